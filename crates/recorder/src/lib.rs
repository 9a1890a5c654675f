//! The recorder: a separate process that joins one recording as a hidden participant. Its core,
//! [`session::RecorderSession`], is sans-IO; [`process`] is the process around it: the
//! entry-point WebSocket, the UDP sockets and the clock.

pub mod composed;
pub mod process;
pub mod session;
