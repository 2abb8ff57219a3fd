//! The CNI specification (1.0), the runtime's side: run a plugin binary
//! (`exec`), run a network configuration list's plugins in order
//! (`list`), and read what ADD returns (`result`).

pub mod exec;
pub mod list;
pub mod result;

pub use exec::{CniCommand, Invocation, PluginPath};
pub use list::{NetworkConfigList, CNI_VERSION};
