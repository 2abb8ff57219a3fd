//! A network configuration list (`.conflist`, CNI spec 1.0 section 1) and
//! the order its plugins run in: ADD in order, each given the previous
//! plugin's result as `prevResult`; DEL in reverse order and CHECK in
//! order, each given the cached result of ADD. Runtime values (port
//! mappings) reach only the plugins that declare the capability.

use super::exec::{self, CniCommand, Invocation, PluginPath};
use crate::error::NetError;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The version peapod speaks and writes; the Debian 12 plugins support
/// 0.1.0 up to 1.0.0 (`/usr/lib/cni/bridge --version`).
pub const CNI_VERSION: &str = "1.0.0";

#[derive(Debug, Clone, PartialEq)]
pub struct NetworkConfigList {
    pub name: String,
    pub cni_version: String,
    /// Each plugin's configuration as written (with its `type`).
    pub plugins: Vec<Value>,
    pub disable_check: bool,
    /// The file it came from.
    pub source: PathBuf,
}

fn config_err(path: &Path, message: impl Into<String>) -> NetError {
    NetError::Config {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

impl NetworkConfigList {
    /// Parse a `.conflist`, or a single plugin's `.conf`/`.json` (a list of
    /// one, as libcni reads it).
    pub fn parse(bytes: &[u8], path: &Path) -> Result<Self, NetError> {
        let v: Value = serde_json::from_slice(bytes)
            .map_err(|e| config_err(path, format!("not valid JSON: {e}")))?;
        let obj = v
            .as_object()
            .ok_or_else(|| config_err(path, "must be a JSON object"))?;
        let name = obj
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| config_err(path, "\"name\" is required (the network's name)"))?
            .to_string();
        let cni_version = obj
            .get("cniVersion")
            .and_then(Value::as_str)
            .unwrap_or(CNI_VERSION)
            .to_string();
        let plugins = match obj.get("plugins") {
            Some(Value::Array(p)) => p.clone(),
            Some(_) => return Err(config_err(path, "\"plugins\" must be a list")),
            None if obj.contains_key("type") => {
                let mut single = obj.clone();
                single.remove("cniVersion");
                single.remove("name");
                vec![Value::Object(single)]
            }
            None => {
                return Err(config_err(
                    path,
                    "\"plugins\" is required (a list of plugin configurations)",
                ))
            }
        };
        if plugins.is_empty() {
            return Err(config_err(path, "\"plugins\" is empty"));
        }
        for (i, p) in plugins.iter().enumerate() {
            if p.get("type")
                .and_then(Value::as_str)
                .unwrap_or("")
                .is_empty()
            {
                return Err(config_err(
                    path,
                    format!("plugins[{i}].type is required (the plugin binary's name)"),
                ));
            }
        }
        Ok(Self {
            name,
            cni_version,
            plugins,
            disable_check: obj
                .get("disableCheck")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            source: path.to_path_buf(),
        })
    }

    /// The list as JSON (what is recorded with a sandbox, so that DEL uses
    /// the configuration ADD used even if the file changed since).
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "cniVersion": self.cni_version,
            "name": self.name,
            "disableCheck": self.disable_check,
            "plugins": self.plugins,
        })
    }

    fn kind(plugin: &Value) -> &str {
        plugin.get("type").and_then(Value::as_str).unwrap_or("")
    }

    /// What plugin `i` gets on stdin.
    pub fn plugin_config(
        &self,
        i: usize,
        prev: Option<&Value>,
        runtime: &BTreeMap<String, Value>,
    ) -> Value {
        let mut conf: Map<String, Value> = self.plugins[i].as_object().cloned().unwrap_or_default();
        conf.insert("cniVersion".into(), Value::String(self.cni_version.clone()));
        conf.insert("name".into(), Value::String(self.name.clone()));
        let caps = conf.get("capabilities").cloned().unwrap_or(Value::Null);
        let rc: Map<String, Value> = runtime
            .iter()
            .filter(|(k, _)| caps.get(k.as_str()).and_then(Value::as_bool) == Some(true))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if !rc.is_empty() {
            conf.insert("runtimeConfig".into(), Value::Object(rc));
        }
        if let Some(p) = prev.filter(|p| !p.is_null()) {
            conf.insert("prevResult".into(), p.clone());
        }
        Value::Object(conf)
    }

    /// ADD: every plugin in order; the last one's result. On an error the
    /// plugins already run are not undone here: the caller runs DEL.
    pub fn add(
        &self,
        path: &PluginPath,
        inv: &Invocation,
        runtime: &BTreeMap<String, Value>,
    ) -> Result<Value, NetError> {
        let mut prev = Value::Null;
        for (i, p) in self.plugins.iter().enumerate() {
            let conf = self.plugin_config(i, Some(&prev), runtime);
            prev = exec::run(path, Self::kind(p), &self.name, CniCommand::Add, inv, &conf)?;
        }
        Ok(prev)
    }

    /// DEL: every plugin in reverse order, each given `cached` (the ADD
    /// result, when there is one). Every plugin runs even when one fails,
    /// so as much as possible is released; the first error is returned.
    pub fn del(
        &self,
        path: &PluginPath,
        inv: &Invocation,
        runtime: &BTreeMap<String, Value>,
        cached: Option<&Value>,
    ) -> Result<(), NetError> {
        let mut first = None;
        for (i, p) in self.plugins.iter().enumerate().rev() {
            let conf = self.plugin_config(i, cached, runtime);
            if let Err(e) = exec::run(path, Self::kind(p), &self.name, CniCommand::Del, inv, &conf)
            {
                tracing::warn!(network = %self.name, container = %inv.container_id, "{e}");
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// CHECK: every plugin in order, each given the cached ADD result.
    pub fn check(
        &self,
        path: &PluginPath,
        inv: &Invocation,
        runtime: &BTreeMap<String, Value>,
        cached: &Value,
    ) -> Result<(), NetError> {
        if self.disable_check {
            return Ok(());
        }
        for (i, p) in self.plugins.iter().enumerate() {
            let conf = self.plugin_config(i, Some(cached), runtime);
            exec::run(
                path,
                Self::kind(p),
                &self.name,
                CniCommand::Check,
                inv,
                &conf,
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn plugin_config_gets_name_version_caps_and_prev_result() {
        let list = NetworkConfigList::parse(
            br#"{"cniVersion":"1.0.0","name":"net1","plugins":[
                {"type":"bridge","bridge":"br0"},
                {"type":"portmap","capabilities":{"portMappings":true}}]}"#,
            Path::new("x.conflist"),
        )
        .unwrap();
        let rt = BTreeMap::from([(
            "portMappings".to_string(),
            json!([{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]),
        )]);
        let prev = json!({"cniVersion": "1.0.0", "ips": [{"address": "10.1.0.2/24"}]});
        let first = list.plugin_config(0, None, &rt);
        assert_eq!(first["name"], "net1");
        assert_eq!(first["cniVersion"], "1.0.0");
        assert!(first.get("runtimeConfig").is_none(), "{first}");
        assert!(first.get("prevResult").is_none(), "{first}");
        let second = list.plugin_config(1, Some(&prev), &rt);
        assert_eq!(second["runtimeConfig"]["portMappings"][0]["hostPort"], 8080);
        assert_eq!(second["prevResult"], prev);
    }

    #[test]
    fn single_plugin_conf_and_errors() {
        let l = NetworkConfigList::parse(
            br#"{"cniVersion":"0.4.0","name":"one","type":"bridge","bridge":"b"}"#,
            Path::new("a.conf"),
        )
        .unwrap();
        assert_eq!(l.plugins.len(), 1);
        assert_eq!(l.plugins[0]["type"], "bridge");
        assert!(l.plugins[0].get("name").is_none());
        for (body, want) in [
            (&br#"{"plugins":[]}"#[..], "\"name\" is required"),
            (br#"{"name":"x","plugins":[]}"#, "empty"),
            (
                br#"{"name":"x","plugins":[{"bridge":"b"}]}"#,
                "plugins[0].type",
            ),
            (br#"{"name":"x"}"#, "\"plugins\" is required"),
            (b"{", "not valid JSON"),
        ] {
            let e = NetworkConfigList::parse(body, Path::new("/etc/peapod/net.d/bad.conflist"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{e}");
            assert!(e.contains("/etc/peapod/net.d/bad.conflist"), "{e}");
        }
    }
}
