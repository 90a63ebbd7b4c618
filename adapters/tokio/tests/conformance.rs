//! Every conformance scenario, over hawser-tokio and loopback TCP.

mod common;

use common::*;

hawser_conformance::conformance_tests!(Tokio, run);
