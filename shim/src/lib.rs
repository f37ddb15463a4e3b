//! The per-container supervisor (issue 7). Not built yet: this crate only reserves its place in the workspace.
