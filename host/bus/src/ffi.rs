//! The one socket option the `zmq` crate has no setter for.
#![allow(unsafe_code)]

use std::os::raw::{c_int, c_void};

/// Sets `ZMQ_XPUB_NODROP`: at the high-water mark a send fails with EAGAIN
/// instead of the message vanishing, so the publisher can count it.
pub(crate) fn set_xpub_nodrop(socket: &mut zmq::Socket) -> Result<(), zmq::Error> {
    let on: c_int = 1;
    // SAFETY: `socket.as_mut_ptr()` is the live libzmq socket owned by
    // `socket` (borrowed mutably for the call, so no other thread uses it);
    // the option value is a valid `c_int` on the stack whose size is passed
    // as the length, as zmq_setsockopt(3) requires for ZMQ_XPUB_NODROP.
    let rc = unsafe {
        zmq_sys::zmq_setsockopt(
            socket.as_mut_ptr(),
            zmq_sys::ZMQ_XPUB_NODROP as c_int,
            (&on as *const c_int).cast::<c_void>(),
            size_of::<c_int>(),
        )
    };
    if rc == 0 {
        return Ok(());
    }
    // SAFETY: zmq_errno reads libzmq's thread-local errno; no arguments.
    Err(zmq::Error::from_raw(unsafe { zmq_sys::zmq_errno() }))
}
