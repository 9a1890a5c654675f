//! The recorder: a separate process that joins one recording as a hidden participant. Its core,
//! [`session::RecorderSession`], is sans-IO; the process around it (entry-point WebSocket, UDP
//! socket, clock) arrives with the server in step 2.

pub mod session;
