//! The recorder: a separate process that joins one recording as a hidden participant. Its core,
//! [`session::RecorderSession`], is sans-IO (but for a composed recording's composing, which
//! runs on a thread of its own: [`compose_worker`]); [`process`] is the process around it: the
//! entry-point WebSocket, the UDP sockets and the clock.

pub mod compose_worker;
pub mod composed;
pub mod process;
pub mod session;
