//! The `lbdeploy` executable: the controller's CLI and, on every host, the
//! agent. All logic lives in the library; this file only picks an exit code.

fn main() {}
