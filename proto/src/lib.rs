//! The gRPC APIs shared by shim, manager and clients (issue 7 onward). Not built yet: this crate only reserves its place in the workspace.
