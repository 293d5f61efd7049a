//! One integration-test binary: every module below is linked into it, so the
//! suite links once (the ripgrep layout).

mod lab;
mod support;
