//! A server acceptor's first read of a new link: a hello, a resume request, or
//! neither. Parsing never panics, never claims more bytes than it was given, and
//! a request it accepts survives an encode/parse round trip (the reserved field
//! is not checked on receipt, so the bytes themselves may differ there).

use hawser_core::resume::{parse_opening, Opening};

/// Runs one input.
pub fn run(data: &[u8]) {
    // Parsed as an acceptor does, one more byte at a time until it decides.
    for end in 0..=data.len() {
        match parse_opening(&data[..end]) {
            Ok(None) => continue,
            Ok(Some(Opening::Hello)) => return,
            Ok(Some(Opening::Resume { request, consumed })) => {
                assert!(consumed <= end, "consumed {consumed} of {end} bytes");
                let encoded = request.encode();
                assert_eq!(encoded.len(), consumed);
                let Ok(Some(Opening::Resume { request: again, .. })) = parse_opening(&encoded) else {
                    panic!("an accepted request does not parse once re-encoded");
                };
                assert_eq!((again.ticket.id, again.received), (request.ticket.id, request.received));
                assert!(again.ticket.token.ct_eq(&request.ticket.token));
                return;
            }
            Err(_) => return,
        }
    }
}
