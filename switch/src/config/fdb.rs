//! `[[fdb]]`: static entries on a port (those behind a remote VTEP are
//! checked with the `[vtep]`, in vtep.rs).

use super::network::index as net_idx;
use super::{ConfigError, Ctx, Network, PortCfg, StaticFdb};
use serde::Deserialize;
use shunt_parsers::MacAddr;
use toml::Spanned;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFdb {
    network: Spanned<String>,
    mac: Spanned<String>,
    port: Option<Spanned<String>>,
    vtep: Option<Spanned<String>>,
}

/// A static entry behind a remote VTEP, as written: (network, MAC, the
/// `vtep` value, where the MAC was written).
pub(super) type VtepEntry = (usize, MacAddr, Spanned<String>, std::ops::Range<usize>);

pub(super) fn sections(
    ctx: &Ctx,
    raw: &[Spanned<RawFdb>],
    networks: &[Network],
    ports: &[PortCfg],
) -> Result<(Vec<StaticFdb>, Vec<VtepEntry>), ConfigError> {
    let mut fdb: Vec<StaticFdb> = Vec::new();
    let mut vtep_fdb = Vec::new();
    for fs in raw {
        let line = ctx.line(fs.span().start);
        let f = fs.get_ref();
        let network = net_idx(ctx, networks, &f.network, "static entry")?;
        let mac = match f.mac.get_ref().parse::<MacAddr>() {
            Ok(m) if m.is_unicast() => m,
            Ok(_) => {
                return ctx.err(
                    f.mac.span(),
                    format!("static entry mac {:?} is not unicast", f.mac.get_ref()),
                )
            }
            Err(_) => {
                return ctx.err(
                    f.mac.span(),
                    format!(
                        "static entry mac {:?} is not like \"02:00:00:00:00:99\"",
                        f.mac.get_ref()
                    ),
                )
            }
        };
        let port_s = match (&f.port, &f.vtep) {
            (Some(p), None) => p,
            (None, Some(v)) => {
                vtep_fdb.push((network, mac, v.clone(), f.mac.span()));
                continue;
            }
            _ => return ctx.err(fs.span(), "static entry needs either `port` or `vtep`"),
        };
        let Some(port) = ports.iter().position(|p| &p.name == port_s.get_ref()) else {
            return ctx.err(port_s.span(), format!("static entry names port {:?}, which is not defined (host ports are named HOST.NETWORK)", port_s.get_ref()));
        };
        if !ports[port].mode.carries(network) {
            return ctx.err(
                port_s.span(),
                format!(
                    "port {:?} does not carry network {:?}",
                    port_s.get_ref(),
                    f.network.get_ref()
                ),
            );
        }
        if fdb.iter().any(|e| e.network == network && e.mac == mac) {
            return ctx.err(f.mac.span(), "static entry is defined twice");
        }
        fdb.push(StaticFdb {
            network,
            mac,
            port,
            line,
        });
    }
    Ok((fdb, vtep_fdb))
}
