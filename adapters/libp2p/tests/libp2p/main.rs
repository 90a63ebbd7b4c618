//! hawser-libp2p against itself and against libp2p-yamux: the properties
//! libp2p asks of every muxer, over a pipe that cuts writes into pieces, and
//! real swarms (ping, identify, many concurrent streams, bulk transfer).

mod compliance;
mod swarm;
