//! One integration-test binary: every module below is linked into it, so the
//! suite links once (the ripgrep layout).

mod agent;
mod apply;
mod architecture;
mod checks;
mod cluster;
mod dataplane;
mod demo;
mod desired;
mod failsafe;
mod golden;
mod hex;
mod host;
mod hostile_files;
mod hostile_input;
mod hostile_parsers;
mod hostile_procs;
mod hostile_secrets;
mod hostile_vrrp;
mod import;
mod ipvs_vm;
mod lab;
mod realserver;
mod status;
mod sudo_hosts;
mod support;
mod systemd_hosts;
mod validate;
mod vrrp_decode;
mod vrrp_fault;
mod vrrp_fsm;
mod vrrp_ipv6;
mod vrrp_lab;
mod vrrp_realtime;
mod vrrp_track;
mod vrrp_vectors;
