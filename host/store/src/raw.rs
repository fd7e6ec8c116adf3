//! XRANGE without the generic client: the command written on a plain TCP
//! connection and the RESP2 reply decoded in place into one byte arena plus
//! offsets. The generic path builds a `Value` tree (a `Vec` per bulk string,
//! per entry, per field list), which is where most of a large time-travel
//! query's time went (toolchain.md: ~5 µs per entry in the client, vs
//! ~1 µs on the server). Here a page costs a few allocations in all.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::{StoreError, StreamId};

/// One page of entries: ids and field offsets into `buf`.
#[derive(Debug, Default)]
pub struct RawEntries {
    buf: Vec<u8>,
    /// (id, first field index, field count)
    entries: Vec<(StreamId, u32, u32)>,
    /// (name start, name len, value start, value len) into `buf`
    fields: Vec<(u32, u32, u32, u32)>,
}

impl RawEntries {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn id(&self, i: usize) -> StreamId {
        self.entries[i].0
    }

    /// The fields of entry `i` as (name, value) byte slices.
    pub fn fields(&self, i: usize) -> impl Iterator<Item = (&[u8], &[u8])> {
        let (_, first, n) = self.entries[i];
        self.fields[first as usize..(first + n) as usize].iter().map(|&(ns, nl, vs, vl)| {
            (&self.buf[ns as usize..(ns + nl) as usize], &self.buf[vs as usize..(vs + vl) as usize])
        })
    }

    pub fn field(&self, i: usize, name: &str) -> Option<&[u8]> {
        self.fields(i).find(|(k, _)| *k == name.as_bytes()).map(|(_, v)| v)
    }
}

enum Step<T> {
    Done(T),
    More,
}

fn bad(what: &str) -> StoreError {
    StoreError::Protocol(format!("XRANGE reply: {what}"))
}

/// `<prefix><int>\r\n` at `pos`.
fn header(buf: &[u8], pos: usize, prefix: u8) -> Result<Step<(i64, usize)>, StoreError> {
    let Some(&first) = buf.get(pos) else { return Ok(Step::More) };
    if first == b'-' {
        let end = buf[pos..].windows(2).position(|w| w == b"\r\n").map_or(buf.len(), |e| pos + e);
        return Err(StoreError::Protocol(String::from_utf8_lossy(&buf[pos + 1..end]).into_owned()));
    }
    if first != prefix {
        return Err(bad(&format!("expected {:?}, got {:?}", prefix as char, first as char)));
    }
    let Some(end) = buf[pos..].windows(2).position(|w| w == b"\r\n") else { return Ok(Step::More) };
    let text = std::str::from_utf8(&buf[pos + 1..pos + end]).map_err(|_| bad("length"))?;
    Ok(Step::Done((text.parse().map_err(|_| bad("length"))?, pos + end + 2)))
}

/// A bulk string at `pos`: (start, len, next).
fn bulk(buf: &[u8], pos: usize) -> Result<Step<(usize, usize, usize)>, StoreError> {
    let Step::Done((len, start)) = header(buf, pos, b'$')? else { return Ok(Step::More) };
    let len = usize::try_from(len).map_err(|_| bad("nil in an entry"))?;
    if buf.len() < start + len + 2 {
        return Ok(Step::More);
    }
    Ok(Step::Done((start, len, start + len + 2)))
}

fn parse_id(b: &[u8]) -> Result<StreamId, StoreError> {
    let s = std::str::from_utf8(b).map_err(|_| bad("id"))?;
    s.parse()
}

/// One entry at `pos`, appended to `out` (fields rolled back if incomplete).
fn entry(buf: &[u8], pos: usize, out: &mut RawEntries) -> Result<Step<usize>, StoreError> {
    let (pair, p) = match header(buf, pos, b'*')? {
        Step::Done(h) => h,
        Step::More => return Ok(Step::More),
    };
    if pair != 2 {
        return Err(bad("an entry is not an (id, fields) pair"));
    }
    let Step::Done((id_start, id_len, mut p)) = bulk(buf, p)? else { return Ok(Step::More) };
    let id = parse_id(&buf[id_start..id_start + id_len])?;
    let Step::Done((n, q)) = header(buf, p, b'*')? else { return Ok(Step::More) };
    p = q;
    let first = out.fields.len();
    for _ in 0..n.max(0) / 2 {
        let Step::Done((ks, kl, q)) = bulk(buf, p)? else {
            out.fields.truncate(first);
            return Ok(Step::More);
        };
        let Step::Done((vs, vl, q)) = bulk(buf, q)? else {
            out.fields.truncate(first);
            return Ok(Step::More);
        };
        out.fields.push((ks as u32, kl as u32, vs as u32, vl as u32));
        p = q;
    }
    out.entries.push((id, first as u32, (out.fields.len() - first) as u32));
    Ok(Step::Done(p))
}

/// A plain connection for raw range reads.
#[derive(Debug)]
pub struct RawConnection {
    stream: TcpStream,
    chunk: Vec<u8>,
}

impl RawConnection {
    pub fn connect(
        host: &str,
        port: u16,
        username: Option<&str>,
        password: Option<&str>,
        timeout: Duration,
    ) -> Result<Self, StoreError> {
        let stream =
            TcpStream::connect((host, port)).map_err(|e| StoreError::Unavailable(format!("{host}:{port}: {e}")))?;
        stream.set_read_timeout(Some(timeout)).map_err(|e| StoreError::Unavailable(e.to_string()))?;
        stream.set_nodelay(true).map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let mut c = Self { stream, chunk: vec![0; 256 * 1024] };
        if let Some(pw) = password {
            let mut args = vec!["AUTH"];
            args.extend(username);
            args.push(pw);
            c.send(&args)?;
            let mut reply = Vec::new();
            c.read_some(&mut reply)?;
            if !reply.starts_with(b"+OK") {
                return Err(StoreError::Config(
                    "authentication failed; check VALKEY_USERNAME / VALKEY_PASSWORD".into(),
                ));
            }
        }
        Ok(c)
    }

    fn send(&mut self, args: &[&str]) -> Result<(), StoreError> {
        let mut req = Vec::with_capacity(64);
        req.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
        for a in args {
            req.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            req.extend_from_slice(a.as_bytes());
            req.extend_from_slice(b"\r\n");
        }
        self.stream.write_all(&req).map_err(|e| StoreError::Unavailable(e.to_string()))
    }

    fn read_some(&mut self, into: &mut Vec<u8>) -> Result<(), StoreError> {
        let n = self.stream.read(&mut self.chunk).map_err(|e| StoreError::Unavailable(e.to_string()))?;
        if n == 0 {
            return Err(StoreError::Unavailable("the server closed the connection".into()));
        }
        into.extend_from_slice(&self.chunk[..n]);
        Ok(())
    }

    /// XRANGE `key` `from` `to` COUNT `count`, decoded into `out` (reused).
    pub fn range(
        &mut self,
        key: &str,
        from: StreamId,
        to: StreamId,
        count: usize,
        out: &mut RawEntries,
    ) -> Result<(), StoreError> {
        out.buf.clear();
        out.entries.clear();
        out.fields.clear();
        let (from, to, count) = (from.to_string(), to.to_string(), count.to_string());
        self.send(&["XRANGE", key, &from, &to, "COUNT", &count])?;
        let mut buf = std::mem::take(&mut out.buf);
        let result = (|| {
            let (n, mut pos) = loop {
                match header(&buf, 0, b'*')? {
                    Step::Done(h) => break h,
                    Step::More => self.read_some(&mut buf)?,
                }
            };
            let mut left = n.max(0);
            while left > 0 {
                match entry(&buf, pos, out)? {
                    Step::Done(p) => {
                        pos = p;
                        left -= 1;
                    }
                    Step::More => self.read_some(&mut buf)?,
                }
            }
            Ok(())
        })();
        out.buf = buf;
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_a_reply_split_anywhere() {
        let reply =
            b"*2\r\n*2\r\n$3\r\n5-0\r\n*4\r\n$1\r\na\r\n$2\r\nbb\r\n$1\r\nc\r\n$0\r\n\r\n*2\r\n$3\r\n6-1\r\n*0\r\n";
        for cut in 0..reply.len() {
            let mut out = RawEntries::default();
            let mut buf = reply[..cut].to_vec();
            let mut complete = false;
            let mut pos = match header(&buf, 0, b'*').expect("ok") {
                Step::Done((_, p)) => p,
                Step::More => {
                    buf = reply.to_vec();
                    4
                }
            };
            let mut left = 2;
            while left > 0 {
                match entry(&buf, pos, &mut out).expect("ok") {
                    Step::Done(p) => {
                        pos = p;
                        left -= 1;
                    }
                    Step::More => buf = reply.to_vec(),
                }
                complete = left == 0;
            }
            assert!(complete);
            out.buf = buf;
            assert_eq!(out.len(), 2);
            assert_eq!(out.id(0), StreamId::new(5, 0));
            assert_eq!(out.field(0, "a"), Some(&b"bb"[..]));
            assert_eq!(out.field(0, "c"), Some(&b""[..]));
            assert_eq!(out.id(1), StreamId::new(6, 1));
            assert_eq!(out.fields(1).count(), 0);
        }
    }
}
