//! The little HTTP/1.1 the metrics endpoint speaks, pure: find the end of
//! a request's head, judge it, and write the answer. One request per
//! connection (`Connection: close`), no body read, nothing but `GET` (and
//! `HEAD`) of `/metrics`.
//!
//! Every bound is here and named: the head is at most [`HEAD_MAX`] bytes
//! and [`HEADERS_MAX`] header lines; anything else is answered with its
//! status and the connection closed. The bytes come from anyone who can
//! reach the port, so the parser never panics and never allocates more
//! than the head it was given.

/// The largest request head read, in bytes. Prometheus sends about 300
/// (its `Accept`, `User-Agent` and scrape-timeout headers); a browser or
/// curl under 1 KiB.
pub const HEAD_MAX: usize = 8 * 1024;

/// The most header lines a request may have. Prometheus sends five.
pub const HEADERS_MAX: usize = 32;

/// The one path served.
pub const PATH: &str = "/metrics";

/// What a request head amounts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// `GET /metrics`: the body follows.
    Metrics,
    /// `HEAD /metrics`: the headers only.
    MetricsHead,
    /// Refused, with this status.
    Refuse(Status),
}

/// A status this endpoint answers with, other than 200.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// A head that is not HTTP/1.x.
    BadRequest,
    /// Any path but [`PATH`].
    NotFound,
    /// Any method but `GET` and `HEAD`.
    MethodNotAllowed,
    /// More than [`HEAD_MAX`] bytes or [`HEADERS_MAX`] lines of head.
    HeadersTooLarge,
    /// Every scrape slot is busy.
    Busy,
}

impl Status {
    /// The status line's code and reason.
    pub fn line(self) -> &'static str {
        match self {
            Status::BadRequest => "400 Bad Request",
            Status::NotFound => "404 Not Found",
            Status::MethodNotAllowed => "405 Method Not Allowed",
            Status::HeadersTooLarge => "431 Request Header Fields Too Large",
            Status::Busy => "503 Service Unavailable",
        }
    }
}

/// Where the head in `buf` ends (just past its blank line), if it has
/// ended: `\r\n\r\n`, or `\n\n` from clients that send bare line feeds.
pub fn head_end(buf: &[u8]) -> Option<usize> {
    let crlf = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Judge a complete request head (as [`head_end`] delimits it).
pub fn judge(head: &[u8]) -> Verdict {
    if head.len() > HEAD_MAX {
        return Verdict::Refuse(Status::HeadersTooLarge);
    }
    let Ok(text) = std::str::from_utf8(head) else {
        return Verdict::Refuse(Status::BadRequest);
    };
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let request = lines.next().unwrap_or("");
    let headers = lines.take_while(|l| !l.is_empty()).count();
    if headers > HEADERS_MAX {
        return Verdict::Refuse(Status::HeadersTooLarge);
    }
    let mut words = request.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (words.next(), words.next(), words.next(), words.next())
    else {
        return Verdict::Refuse(Status::BadRequest);
    };
    if !version.starts_with("HTTP/1.") || version.len() != 8 {
        return Verdict::Refuse(Status::BadRequest);
    }
    let path = target.split_once('?').map_or(target, |(p, _)| p);
    let head_only = match method {
        "GET" => false,
        "HEAD" => true,
        m if !m.is_empty() && m.bytes().all(|b| b.is_ascii_uppercase()) => {
            return Verdict::Refuse(Status::MethodNotAllowed);
        }
        _ => return Verdict::Refuse(Status::BadRequest),
    };
    if path != PATH {
        return Verdict::Refuse(Status::NotFound);
    }
    if head_only { Verdict::MetricsHead } else { Verdict::Metrics }
}

/// The content type of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The whole answer to a scrape: headers and, unless `head_only`, `body`.
pub fn ok(body: &str, head_only: bool) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: {CONTENT_TYPE}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(body.as_bytes());
    }
    out
}

/// The whole answer refusing a request with `status`.
pub fn refuse(status: Status) -> Vec<u8> {
    let body = format!("{}\n", status.line());
    let allow = if status == Status::MethodNotAllowed {
        "Allow: GET, HEAD\r\n"
    } else {
        ""
    };
    format!(
        "HTTP/1.1 {}\r\nContent-Type: text/plain; charset=utf-8\r\n\
         {allow}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        status.line(),
        body.len()
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROMETHEUS: &[u8] = b"GET /metrics HTTP/1.1\r\nHost: 10.0.0.11:9105\r\n\
        User-Agent: Prometheus/2.42.0\r\nAccept: application/openmetrics-text;\
        version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1\r\n\
        Accept-Encoding: gzip\r\nX-Prometheus-Scrape-Timeout-Seconds: 10\r\n\r\n";

    #[test]
    fn prometheus_and_curl_get_the_metrics() {
        assert_eq!(head_end(PROMETHEUS), Some(PROMETHEUS.len()));
        assert_eq!(judge(PROMETHEUS), Verdict::Metrics);
        let curl = b"GET /metrics?x=1 HTTP/1.0\n\n";
        assert_eq!(head_end(curl), Some(curl.len()));
        assert_eq!(judge(curl), Verdict::Metrics);
        assert_eq!(
            judge(b"HEAD /metrics HTTP/1.1\r\n\r\n"),
            Verdict::MetricsHead
        );
    }

    #[test]
    fn a_head_ends_at_its_first_blank_line() {
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: x\r\n"), None);
        assert_eq!(head_end(b"GET / HTTP/1.1\r\n\r\nbody\r\n\r\n"), Some(18));
        assert_eq!(head_end(b""), None);
    }

    #[test]
    fn everything_else_is_refused_with_its_status() {
        let refused = |h: &[u8]| match judge(h) {
            Verdict::Refuse(s) => Some(s),
            _ => None,
        };
        use Status::*;
        assert_eq!(refused(b"GET / HTTP/1.1\r\n\r\n"), Some(NotFound));
        assert_eq!(refused(b"GET /metricsx HTTP/1.1\r\n\r\n"), Some(NotFound));
        assert_eq!(
            refused(b"GET http://x/metrics HTTP/1.1\r\n\r\n"),
            Some(NotFound)
        );
        assert_eq!(
            refused(b"POST /metrics HTTP/1.1\r\n\r\n"),
            Some(MethodNotAllowed)
        );
        assert_eq!(
            refused(b"DELETE / HTTP/1.1\r\n\r\n"),
            Some(MethodNotAllowed)
        );
        assert_eq!(refused(b"GET /metrics\r\n\r\n"), Some(BadRequest));
        assert_eq!(refused(b"GET /metrics HTTP/2.0\r\n\r\n"), Some(BadRequest));
        assert_eq!(
            refused(b"GET /metrics HTTP/1.1x\r\n\r\n"),
            Some(BadRequest)
        );
        assert_eq!(
            refused(b"GET  /metrics HTTP/1.1\r\n\r\n"),
            Some(BadRequest)
        );
        assert_eq!(refused(b"get /metrics HTTP/1.1\r\n\r\n"), Some(BadRequest));
        assert_eq!(
            refused(b"GET /metrics HTTP/1.1\xff\r\n\r\n"),
            Some(BadRequest)
        );
        assert_eq!(refused(b"\r\n\r\n"), Some(BadRequest));
        let many = format!(
            "GET /metrics HTTP/1.1\r\n{}\r\n",
            "X: y\r\n".repeat(HEADERS_MAX + 1)
        );
        assert_eq!(refused(many.as_bytes()), Some(HeadersTooLarge));
        let fits = format!(
            "GET /metrics HTTP/1.1\r\n{}\r\n",
            "X: y\r\n".repeat(HEADERS_MAX)
        );
        assert_eq!(judge(fits.as_bytes()), Verdict::Metrics);
        let long = format!(
            "GET /metrics HTTP/1.1\r\nX: {}\r\n\r\n",
            "y".repeat(HEAD_MAX)
        );
        assert_eq!(refused(long.as_bytes()), Some(HeadersTooLarge));
    }

    #[test]
    fn answers_carry_their_length_and_close() {
        let a = String::from_utf8(ok("a 1\n", false)).unwrap();
        assert!(a.starts_with("HTTP/1.1 200 OK\r\n"), "{a}");
        assert!(
            a.contains("Content-Length: 4\r\nConnection: close\r\n\r\na 1\n")
        );
        let h = String::from_utf8(ok("a 1\n", true)).unwrap();
        assert!(h.ends_with("Content-Length: 4\r\nConnection: close\r\n\r\n"));
        let r = String::from_utf8(refuse(Status::MethodNotAllowed)).unwrap();
        assert!(r.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"), "{r}");
        assert!(r.contains("Allow: GET, HEAD\r\n"), "{r}");
        let (head, body) = r.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("Content-Length: {}", body.len())));
    }

    /// Hostile heads: a bounded number of pseudo-random byte strings,
    /// half of them built from request fragments so that they get past
    /// the first checks. None panics, and each is judged one way.
    #[test]
    fn random_heads_never_panic() {
        let pieces: [&[u8]; 12] = [
            b"GET",
            b"HEAD",
            b" ",
            b"/metrics",
            b"?",
            b"HTTP/1.1",
            b"\r\n",
            b"\n",
            b"X: y",
            b"\xff\xfe",
            b"\0",
            b"%2e",
        ];
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for round in 0..20_000 {
            let mut head = Vec::new();
            let parts = next() % 40;
            for _ in 0..parts {
                if round % 2 == 0 {
                    head.extend_from_slice(pieces[(next() % 12) as usize]);
                } else {
                    head.push(next() as u8);
                }
            }
            let end = head_end(&head).unwrap_or(head.len());
            assert!(end <= head.len());
            let _ = judge(&head[..end]);
        }
    }
}
