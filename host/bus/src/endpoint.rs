//! Endpoints as users write them (`zmq://host:port`, `zmq+ipc:///path`) and
//! as libzmq wants them (`tcp://host:port`, `ipc:///path`), and CURVE keys.

use serde::Deserialize;

/// `zmq://h:p` and `zmq+tcp://h:p` -> `tcp://h:p`; `zmq+ipc:///p` -> `ipc:///p`;
/// libzmq's own `tcp://`, `ipc://`, `inproc://` pass through.
pub fn to_zmq(url: &str) -> Result<String, String> {
    let url = url.trim();
    let (scheme, rest) = url.split_once("://").ok_or_else(|| {
        format!("{url:?} is not an endpoint: write zmq://host:port, zmq+ipc:///path/to/socket, tcp://... or ipc://...")
    })?;
    let transport = match scheme {
        "zmq" | "zmq+tcp" | "tcp" => "tcp",
        "zmq+ipc" | "ipc" => "ipc",
        "inproc" => "inproc",
        other => {
            return Err(format!(
                "{url:?}: unknown scheme {other:?}; use zmq://, zmq+ipc://, tcp://, ipc:// or inproc://"
            ));
        }
    };
    if rest.is_empty() {
        return Err(format!("{url:?} names no address"));
    }
    if transport == "tcp" && !rest.contains(':') {
        return Err(format!("{url:?} has no port: write {scheme}://host:port"));
    }
    Ok(format!("{transport}://{rest}"))
}

/// Whether `endpoint` (libzmq form) goes over the network.
pub fn is_tcp(endpoint: &str) -> bool {
    endpoint.starts_with("tcp://")
}

/// CURVE encryption and authentication of tcp endpoints (`[bus.curve]`).
/// Keys are Z85 text (40 characters), as `zmq::CurveKeyPair` makes them.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CurveConfig {
    pub enabled: bool,
    /// The publisher's secret key (publishers need it).
    pub server_secret_key: String,
    /// The publisher's public key (subscribers need it to authenticate the publisher).
    pub server_public_key: String,
    /// A subscriber's own key pair; empty: a fresh pair per connection.
    pub client_secret_key: String,
    pub client_public_key: String,
    /// Subscribers' public keys a publisher admits; empty: any subscriber
    /// that knows the publisher's public key.
    pub authorized_clients: Vec<String>,
}

impl std::fmt::Debug for CurveConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CurveConfig")
            .field("enabled", &self.enabled)
            .field("server_public_key", &self.server_public_key)
            .field("client_public_key", &self.client_public_key)
            .field("authorized_clients", &self.authorized_clients)
            .finish_non_exhaustive()
    }
}

impl CurveConfig {
    /// Refuses CURVE when this build's libzmq lacks it, or a key is not Z85.
    /// libzmq has CURVE only when built with libsodium (our zmq-sys patch,
    /// third_party/zmq-sys, links it when installed): `zmq::has("curve")`.
    pub fn check(&self, role: Role) -> Result<(), String> {
        if !self.enabled {
            return Ok(());
        }
        if zmq::has("curve") != Some(true) {
            return Err(
                "bus.curve.enabled = true, but this build's libzmq has no CURVE (zmq::has(\"curve\") is false: \
                 libsodium was not installed when libzmq was built). Install libsodium-dev (scripts/setup.sh does), \
                 then `cargo clean -p zmq-sys` and rebuild; or set bus.curve.enabled = false and protect tcp \
                 endpoints another way (ipc on one machine, an SSH tunnel or VPN between machines)"
                    .into(),
            );
        }
        let key = |name: &str, v: &str| -> Result<(), String> {
            if v.len() != 40 || zmq::z85_decode(v).is_err() {
                return Err(format!("bus.curve.{name} is not a 40-character Z85 key"));
            }
            Ok(())
        };
        match role {
            Role::Publisher => {
                key("server_secret_key", &self.server_secret_key)?;
                self.authorized_clients.iter().try_for_each(|k| key("authorized_clients", k))
            }
            Role::Subscriber => key("server_public_key", &self.server_public_key),
        }
    }

    /// For a publisher with `authorized_clients`: the handler that admits
    /// only them, on `ctx`, started before any socket of `ctx` binds.
    pub(crate) fn start_zap(&self, ctx: &zmq::Context) -> Result<Option<crate::zap::ZapHandler>, String> {
        if !self.enabled || self.authorized_clients.is_empty() {
            return Ok(None);
        }
        self.check(Role::Publisher)?;
        let allowed = self
            .authorized_clients
            .iter()
            .map(|k| {
                zmq::z85_decode(k)
                    .ok()
                    .and_then(|bytes| <[u8; 32]>::try_from(bytes.as_slice()).ok())
                    .ok_or_else(|| format!("bus.curve.authorized_clients: {k:?} is not a 40-character Z85 key"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        crate::zap::ZapHandler::start(ctx, allowed).map(Some)
    }

    /// Applies the keys to a socket about to bind (publisher) or connect
    /// (subscriber) to `endpoint`. ipc endpoints stay plain: the file
    /// system's permissions protect them.
    pub fn apply(&self, socket: &zmq::Socket, role: Role, endpoint: &str) -> Result<(), String> {
        if !self.enabled || !is_tcp(endpoint) {
            return Ok(());
        }
        self.check(role)?;
        let err = |e: zmq::Error| format!("CURVE on {endpoint}: {e}");
        match role {
            Role::Publisher => {
                socket.set_curve_server(true).map_err(err)?;
                socket.set_curve_secretkey(self.server_secret_key.as_bytes()).map_err(err)?;
            }
            Role::Subscriber => {
                socket.set_curve_serverkey(self.server_public_key.as_bytes()).map_err(err)?;
                let (public, secret) = if self.client_secret_key.is_empty() {
                    let pair = zmq::CurveKeyPair::new().map_err(err)?;
                    (pair.public_key.to_vec(), pair.secret_key.to_vec())
                } else {
                    (self.client_public_key.as_bytes().to_vec(), self.client_secret_key.as_bytes().to_vec())
                };
                socket.set_curve_publickey(&public).map_err(err)?;
                socket.set_curve_secretkey(&secret).map_err(err)?;
            }
        }
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Publisher,
    Subscriber,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_urls_map_to_libzmq_endpoints() {
        assert_eq!(to_zmq("zmq://10.0.0.5:5555").as_deref(), Ok("tcp://10.0.0.5:5555"));
        assert_eq!(to_zmq("zmq+ipc:///tmp/t.sock").as_deref(), Ok("ipc:///tmp/t.sock"));
        assert_eq!(to_zmq("ipc:///tmp/t.sock").as_deref(), Ok("ipc:///tmp/t.sock"));
        assert!(to_zmq("zmq://host").expect_err("no port").contains("no port"));
        assert!(to_zmq("http://x:1").expect_err("scheme").contains("unknown scheme"));
        assert!(to_zmq("5555").is_err());
    }

    #[test]
    fn curve_refuses_what_it_cannot_use_and_says_why() {
        let key = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"; // 40 Z85 characters
        let c = CurveConfig { enabled: true, server_secret_key: key[..39].into(), ..CurveConfig::default() };
        match zmq::has("curve") {
            Some(true) => {
                let err = c.check(Role::Publisher).expect_err("a short key");
                assert!(err.contains("server_secret_key is not a 40-character Z85 key"), "{err}");
                let c = CurveConfig {
                    server_secret_key: key.into(),
                    authorized_clients: vec![key.into(), "short".into()],
                    ..c
                };
                let err = c.check(Role::Publisher).expect_err("a short client key");
                assert!(err.contains("authorized_clients"), "{err}");
            }
            _ => assert!(c.check(Role::Publisher).expect_err("no curve").contains("no CURVE")),
        }
        assert_eq!(CurveConfig::default().check(Role::Subscriber), Ok(()));
    }
}
