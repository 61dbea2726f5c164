//! bgpd: a BGP speaker for Kubernetes nodes.
//!
//! ```text
//!   peers (TCP 179) <--bytes--> wire (codec, this crate so far) <--Message--> session FSM, RIB, FIB
//! ```
//!
//! So far this crate holds [`wire`], our own BGP-4 codec with RFC 7606 error handling (see
//! design.md for why we own it), and [`session`], the session FSM with collision handling,
//! damping and graceful restart as a pure state machine. RIB, FIB and the speaker follow.

pub mod session;
pub mod wire;
