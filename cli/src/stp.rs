//! `shunt stp`: the spanning tree as a table (docs/stp.md).

use serde_json::Value;

/// The text form of the `stp` answer.
pub fn print(v: &Value) {
    let s = |k: &str| v[k].as_str().unwrap_or("-").to_string();
    if v["stp"] == "off" {
        out!("spanning tree is off (`[switch] stp = \"rstp\"` turns it on)");
        return;
    }
    let root = if v["bridge_id"] == v["root_id"] {
        "this switch is the root".to_string()
    } else {
        format!(
            "root {} via {} (cost {})",
            s("root_id"),
            s("root_port"),
            v["root_path_cost"]
        )
    };
    out!(
        "bridge {}: {root}; {} topology changes",
        s("bridge_id"),
        v["topology_changes"]
    );
    let mut rows = Vec::new();
    if let Some(ports) = v["ports"].as_object() {
        for (name, p) in ports {
            let f = |k: &str| match &p[k] {
                Value::String(x) => x.clone(),
                Value::Null => "-".into(),
                x => x.to_string(),
            };
            rows.push(vec![
                name.clone(),
                f("role"),
                f("state"),
                f("protocol"),
                f("cost"),
                f("port_id"),
                format!("{}.{}", f("designated_bridge"), f("designated_port")),
                format!("{}/{}", f("bpdus_in"), f("bpdus_out")),
            ]);
        }
    }
    crate::table(
        &[
            "port",
            "role",
            "state",
            "protocol",
            "cost",
            "port id",
            "designated",
            "bpdus in/out",
        ],
        rows,
    );
}
