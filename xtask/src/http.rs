//! Just enough HTTP/1.1 to health-check the test services and create moto's buckets.
//!
//! Only plain `http://127.0.0.1` endpoints are spoken to, so a blocking socket with short timeouts
//! is all that is needed; pulling in an HTTP client crate would make xtask slow to build.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{Context, Result, bail};

/// A response: the status code and the body as (lossy) text.
pub struct Response {
    pub status: u16,
    pub body: String,
}

/// Sends one request with an empty body and reads the whole response.
///
/// `headers` are added after `Host`, `Content-Length` and `Connection: close`.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<Response> {
    let timeout = Duration::from_secs(5);
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1))
        .with_context(|| format!("cannot connect to {addr}"))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;

    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n"
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream
        .write_all(head.as_bytes())
        .with_context(|| format!("cannot send {method} {path} to {addr}"))?;

    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .with_context(|| format!("no complete response to {method} {path} from {addr}"))?;
    parse_response(&raw).with_context(|| format!("{method} {path} on {addr}"))
}

/// `GET path`, returning the status code and body.
pub fn get(addr: SocketAddr, path: &str) -> Result<Response> {
    request(addr, "GET", path, &[])
}

fn parse_response(raw: &[u8]) -> Result<Response> {
    let text = String::from_utf8_lossy(raw);
    let status_line = text.lines().next().unwrap_or_default();
    let mut parts = status_line.split_whitespace();
    let (Some(version), Some(code)) = (parts.next(), parts.next()) else {
        bail!("not an HTTP response: {status_line:?}");
    };
    if !version.starts_with("HTTP/") {
        bail!("not an HTTP response: {status_line:?}");
    }
    let status = code
        .parse()
        .with_context(|| format!("bad status code in {status_line:?}"))?;
    // Bodies are only shown to people in error messages, so chunked encoding is left as is.
    let body = match text.split_once("\r\n\r\n") {
        Some((_, body)) => body.to_string(),
        None => String::new(),
    };
    Ok(Response { status, body })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::thread;

    #[test]
    fn parses_status_and_body() {
        let response =
            parse_response(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 5\r\n\r\nnope!").unwrap();
        assert_eq!(response.status, 403);
        assert_eq!(response.body, "nope!");
    }

    #[test]
    fn rejects_what_is_not_http() {
        assert!(parse_response(b"SSH-2.0-OpenSSH_9.2\r\n").is_err());
        assert!(parse_response(b"").is_err());
    }

    #[test]
    fn get_sends_a_request_and_reads_the_answer() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = thread::spawn(move || {
            let (mut socket, _) = listener.accept().unwrap();
            let mut received = Vec::new();
            let mut buf = [0u8; 1024];
            while !received.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = socket.read(&mut buf).unwrap();
                received.extend_from_slice(&buf[..n]);
            }
            socket
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
                .unwrap();
            String::from_utf8(received).unwrap()
        });
        let response = get(addr, "/v1/config").unwrap();
        let request = server.join().unwrap();
        assert!(
            request.starts_with("GET /v1/config HTTP/1.1\r\n"),
            "{request}"
        );
        assert_eq!(response.status, 200);
        assert_eq!(response.body, "{}");
    }
}
