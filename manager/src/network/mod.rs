//! Networking: pinned network namespaces (`netns`), the CNI plugin protocol
//! (`cni`), and the named networks and published ports of berthctl
//! (`networks`).

pub mod cni;
pub mod netns;
pub mod networks;
