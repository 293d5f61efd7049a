//! The generic-netlink socket to the kernel's IPVS: the only I/O of the
//! back end. It resolves the family, dumps the table and carries out
//! [`Op`]s one request at a time, each acknowledged, so an error names the
//! operation that failed.

use std::io;

use rtnetlink::sys::{Socket, protocols::NETLINK_GENERIC};

use super::codec::{self, Cmd};
use super::syncd::{self, Daemon, Step};
use super::{Counted, Entry, Op, ServiceKey, Table};
use crate::agent::sys::netlink::{self, DecodeError};

/// A failure talking to IPVS, with the operation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The kernel has no IPVS (the `ip_vs` module is not loaded and could
    /// not be).
    #[error(
        "the kernel has no IPVS (generic netlink family \"IPVS\" not \
         found): load it with `modprobe ip_vs`, or use `dataplane: \
         nftables`"
    )]
    NoIpvs,
    /// The socket failed, or the kernel refused a request.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The errno.
        #[source]
        source: io::Error,
    },
    /// The kernel's answer could not be read.
    #[error("{what}: {source}")]
    Decode {
        /// What was being read.
        what: String,
        /// What was wrong.
        #[source]
        source: DecodeError,
    },
}

/// An open generic-netlink socket with IPVS's family id resolved.
#[derive(Debug)]
pub struct Ipvs {
    socket: Socket,
    family: u16,
    seq: u32,
    buf: Vec<u8>,
}

/// Receive buffer: the kernel fills dump datagrams up to about 32 KiB.
const RECV_BUF: usize = 64 * 1024;

impl Ipvs {
    /// Open the socket and resolve the `"IPVS"` family
    /// (`CTRL_CMD_GETFAMILY`).
    ///
    /// # Errors
    /// [`Error::NoIpvs`] on a kernel without IPVS, [`Error::Io`] otherwise.
    pub fn connect() -> Result<Self, Error> {
        let io = |what: &str| {
            let what = what.to_owned();
            move |source| Error::Io { what, source }
        };
        let mut socket = Socket::new(NETLINK_GENERIC)
            .map_err(io("opening generic netlink"))?;
        socket.bind_auto().map_err(io("binding generic netlink"))?;
        let mut ipvs = Ipvs {
            socket,
            family: 0,
            seq: 0,
            buf: Vec::with_capacity(RECV_BUF),
        };
        let replies = match ipvs.request(
            codec::GENL_ID_CTRL,
            codec::CTRL_CMD_GETFAMILY,
            1,
            &codec::get_family(codec::IPVS_GENL_NAME),
            false,
            "resolving generic netlink family IPVS",
        ) {
            Err(Error::Io { source, .. })
                if source.raw_os_error() == Some(2) =>
            {
                return Err(Error::NoIpvs);
            }
            r => r?,
        };
        let reply = replies.first().ok_or(Error::NoIpvs)?;
        ipvs.family = codec::family_id(reply).map_err(|source| {
            Error::Decode { what: "the IPVS family id".into(), source }
        })?;
        Ok(ipvs)
    }

    /// The kernel's whole table: every service (`GET_SERVICE` dump) and
    /// each one's destinations (`GET_DEST` dump).
    ///
    /// # Errors
    /// A refused dump or an unreadable answer.
    pub fn dump(&mut self) -> Result<Table, Error> {
        Ok(self.dump_counted()?.0)
    }

    /// [`Ipvs::dump`], with what the kernel counted of each destination.
    ///
    /// # Errors
    /// A refused dump or an unreadable answer.
    pub fn dump_counted(&mut self) -> Result<(Table, Counted), Error> {
        let mut table = Table::new();
        let mut counted = Counted::new();
        for msg in self.ipvs(Cmd::GetService, &[], true, "listing services")? {
            let (key, settings) =
                codec::decode_service(&msg).map_err(|source| {
                    Error::Decode {
                        what: "a service in the IPVS dump".into(),
                        source,
                    }
                })?;
            table.insert(key, Entry { settings, dests: Default::default() });
        }
        let keys: Vec<ServiceKey> = table.keys().copied().collect();
        for key in keys {
            let what = format!("listing the destinations of {key}");
            let msgs = self.ipvs(
                Cmd::GetDest,
                &codec::service(&key, None),
                true,
                &what,
            )?;
            let entry = table.get_mut(&key).expect("listed above");
            for msg in msgs {
                let (dk, d, traffic) =
                    codec::decode_dest(&msg, key.is_ipv6()).map_err(
                        |source| Error::Decode { what: what.clone(), source },
                    )?;
                entry.dests.insert(dk, d);
                counted.insert((key, dk), traffic);
            }
        }
        Ok((table, counted))
    }

    /// Carry out `ops` in order, stopping at the first the kernel refuses.
    ///
    /// # Errors
    /// The refused operation and the kernel's errno; the earlier ones
    /// stay applied (the next reconcile starts from what is there).
    pub fn apply(&mut self, ops: &[Op]) -> Result<(), Error> {
        for op in ops {
            let (cmd, attrs) = match op {
                Op::AddService(k, s) => {
                    (Cmd::NewService, codec::service(k, Some(s)))
                }
                Op::UpdateService(k, s) => {
                    (Cmd::SetService, codec::service(k, Some(s)))
                }
                Op::DelService(k) => (Cmd::DelService, codec::service(k, None)),
                Op::AddDest(k, dk, d) => {
                    (Cmd::NewDest, dest_attrs(k, dk, Some(d)))
                }
                Op::UpdateDest(k, dk, d) => {
                    (Cmd::SetDest, dest_attrs(k, dk, Some(d)))
                }
                Op::DelDest(k, dk) => (Cmd::DelDest, dest_attrs(k, dk, None)),
            };
            self.ipvs(cmd, &attrs, false, &op.to_string())?;
        }
        Ok(())
    }

    /// The sync daemons running in this network namespace
    /// (`GET_DAEMON` dump): none, one, or a master and a backup.
    ///
    /// # Errors
    /// A refused dump or an unreadable answer.
    pub fn daemons(&mut self) -> Result<Vec<Daemon>, Error> {
        let what = "listing the sync daemons";
        self.ipvs(Cmd::GetDaemon, &[], true, what)?
            .iter()
            .map(|m| {
                codec::decode_daemon(m).map_err(|source| Error::Decode {
                    what: what.into(),
                    source,
                })
            })
            .collect()
    }

    /// Make the running sync daemons `wanted`, none stopping both: the
    /// running ones listed, the [`syncd::steps`] between them carried
    /// out. The steps taken.
    ///
    /// # Errors
    /// A refused listing or step.
    pub fn converge_daemons(
        &mut self,
        wanted: Option<&Daemon>,
    ) -> Result<Vec<Step>, Error> {
        let steps = syncd::steps(wanted, &self.daemons()?);
        self.daemon_steps(&steps)?;
        Ok(steps)
    }

    /// Carry out sync daemon `steps` in order (`NEW_DAEMON`,
    /// `DEL_DAEMON`), stopping at the first the kernel refuses.
    ///
    /// # Errors
    /// The refused step and the kernel's errno.
    fn daemon_steps(&mut self, steps: &[Step]) -> Result<(), Error> {
        for step in steps {
            let (cmd, attrs) = match step {
                Step::Start(d) => (Cmd::NewDaemon, codec::daemon(d, true)),
                Step::Stop(d) => (Cmd::DelDaemon, codec::daemon(d, false)),
            };
            self.ipvs(cmd, &attrs, false, &step.to_string())?;
        }
        Ok(())
    }

    fn ipvs(
        &mut self,
        cmd: Cmd,
        attrs: &[u8],
        dump: bool,
        what: &str,
    ) -> Result<Vec<Vec<u8>>, Error> {
        self.request(
            self.family,
            cmd as u8,
            codec::IPVS_GENL_VERSION,
            attrs,
            dump,
            what,
        )
    }

    /// Send one request and collect the genl payloads of its answer: the
    /// dump's messages up to `NLMSG_DONE`, or the reply (if any) up to the
    /// acknowledgement.
    fn request(
        &mut self,
        family: u16,
        cmd: u8,
        version: u8,
        attrs: &[u8],
        dump: bool,
        what: &str,
    ) -> Result<Vec<Vec<u8>>, Error> {
        self.seq = self.seq.wrapping_add(1);
        let flags = if dump { netlink::NLM_F_DUMP } else { netlink::NLM_F_ACK };
        let req =
            netlink::request(family, flags, self.seq, cmd, version, attrs);
        let io_err = |source| Error::Io { what: what.to_owned(), source };
        self.socket.send(&req, 0).map_err(io_err)?;
        let mut out = Vec::new();
        loop {
            self.buf.clear();
            self.socket.recv(&mut self.buf, 0).map_err(io_err)?;
            let msgs = netlink::messages(&self.buf).map_err(|source| {
                Error::Decode { what: what.to_owned(), source }
            })?;
            for m in msgs.iter().filter(|m| m.seq == self.seq) {
                let code = || {
                    netlink::error_code(m.payload).map_err(|source| {
                        Error::Decode { what: what.to_owned(), source }
                    })
                };
                match m.kind {
                    netlink::NLMSG_ERROR | netlink::NLMSG_DONE => {
                        let code =
                            if m.payload.is_empty() { 0 } else { code()? };
                        if code < 0 {
                            return Err(io_err(io::Error::from_raw_os_error(
                                -code,
                            )));
                        }
                        return Ok(out);
                    }
                    _ => out.push(m.payload.to_vec()),
                }
            }
        }
    }
}

/// A destination command's attributes: its service's key, then the
/// destination.
fn dest_attrs(
    key: &ServiceKey,
    dk: &super::DestKey,
    d: Option<&super::Dest>,
) -> Vec<u8> {
    let mut attrs = codec::service(key, None);
    attrs.extend_from_slice(&codec::dest(dk, d));
    attrs
}
