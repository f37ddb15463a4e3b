//! The manager daemon `berthd` and its client `berthctl` (issues 8-10). Not built yet: this crate only reserves its place in the workspace.
