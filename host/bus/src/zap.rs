//! Client authentication for CURVE publishers: a ZAP handler (ZeroMQ RFC 27)
//! that admits only the subscriber public keys in
//! `[bus.curve] authorized_clients`. Without the list, CURVE still encrypts
//! and lets subscribers authenticate the publisher, but any client that
//! knows the publisher's public key may subscribe.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

/// libzmq asks this inproc endpoint of the socket's context.
const ZAP_ENDPOINT: &str = "inproc://zeromq.zap.01";
/// How often the handler looks at its stop flag.
const POLL_MS: i64 = 100;

/// The running handler; stops (and unbinds) on drop, which must come before
/// the context's.
#[derive(Debug)]
pub(crate) struct ZapHandler {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ZapHandler {
    /// Binds the ZAP endpoint of `ctx` and answers with `allowed` (32-byte
    /// public keys). Must run before the CURVE socket accepts anyone.
    pub(crate) fn start(ctx: &zmq::Context, allowed: Vec<[u8; 32]>) -> Result<Self, String> {
        let socket = ctx.socket(zmq::REP).map_err(|e| format!("ZAP handler: {e}"))?;
        socket.bind(ZAP_ENDPOINT).map_err(|e| format!("ZAP handler: cannot bind {ZAP_ENDPOINT}: {e}"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("bus-zap".into())
                .spawn(move || serve(&socket, &allowed, &stop))
                .map_err(|e| format!("ZAP handler thread: {e}"))?
        };
        Ok(Self { stop, thread: Some(thread) })
    }
}

impl Drop for ZapHandler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(socket: &zmq::Socket, allowed: &[[u8; 32]], stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        match socket.poll(zmq::POLLIN, POLL_MS) {
            Ok(0) => continue,
            Ok(_) => {}
            Err(_) => return,
        }
        let Ok(request) = socket.recv_multipart(0) else { return };
        // version, request id, domain, address, identity, mechanism, credentials...
        let request_id = request.get(1).cloned().unwrap_or_default();
        let admitted = request.get(5).is_some_and(|m| m.as_slice() == b"CURVE")
            && request.get(6).is_some_and(|key| allowed.iter().any(|a| a.as_slice() == key.as_slice()));
        if !admitted {
            let address = request.get(3).map(|a| String::from_utf8_lossy(a).into_owned()).unwrap_or_default();
            let key = request.get(6).and_then(|k| zmq::z85_encode(k).ok()).unwrap_or_default();
            tracing::warn!(%address, public_key = %key, "refused a CURVE subscriber not in bus.curve.authorized_clients");
        }
        let (status, text): (&[u8], &[u8]) =
            if admitted { (b"200", b"OK") } else { (b"400", b"public key not in bus.curve.authorized_clients") };
        let reply: [&[u8]; 6] = [b"1.0", &request_id, status, text, b"", b""];
        if socket.send_multipart(reply, 0).is_err() {
            return;
        }
    }
}
