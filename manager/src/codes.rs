//! The gRPC codes of the layers' errors, for every server that adapts
//! them (berthd's API and the CRI): not found → NotFound, exists →
//! AlreadyExists, wrong state → FailedPrecondition, registry unreachable →
//! Unavailable.

use tonic::Status;

use crate::build::BuildError;
use crate::containers::records::RecordError;
use crate::containers::tasks::TaskError;
use crate::network::networks::NetworkError;
use crate::store::content::ContentError;
use crate::store::images::{ImageError, RegistryFailure};
use crate::store::snapshot::SnapshotError;

/// The gRPC status of an image store error.
pub fn image_status(e: ImageError) -> Status {
    let msg = e.to_string();
    match e {
        ImageError::NotFound(_)
        | ImageError::LeaseNotFound(_)
        | ImageError::Content(ContentError::NotFound(_))
        | ImageError::Snapshot(SnapshotError::NotFound(_)) => Status::not_found(msg),
        ImageError::Snapshot(SnapshotError::Exists(_)) | ImageError::LeaseExists(_) => {
            Status::already_exists(msg)
        }
        ImageError::Invalid(_) | ImageError::NoPlatform { .. } => Status::invalid_argument(msg),
        ImageError::Registry { kind, .. } => match kind {
            RegistryFailure::Unreachable => Status::unavailable(msg),
            RegistryFailure::NotFound => Status::not_found(msg),
            RegistryFailure::Unauthorized => Status::unauthenticated(msg),
            RegistryFailure::Other => Status::unknown(msg),
        },
        ImageError::Snapshot(SnapshotError::Invalid { .. }) => Status::failed_precondition(msg),
        ImageError::DiffId { .. }
        | ImageError::Unpack { .. }
        | ImageError::Content(ContentError::DigestMismatch { .. })
        | ImageError::Content(ContentError::SizeMismatch { .. }) => Status::data_loss(msg),
        _ => Status::internal(msg),
    }
}

/// The gRPC status of a manager error.
pub fn task_status(e: TaskError) -> Status {
    let msg = e.to_string();
    match e {
        TaskError::Record(RecordError::NotFound { .. })
        | TaskError::Network(NetworkError::NotFound(_)) => Status::not_found(msg),
        TaskError::Network(NetworkError::Exists(_)) => Status::already_exists(msg),
        TaskError::Network(NetworkError::Invalid(_)) => Status::invalid_argument(msg),
        TaskError::Record(RecordError::Exists { .. }) => Status::already_exists(msg),
        TaskError::Record(RecordError::InvalidName { .. })
        | TaskError::Invalid(_)
        | TaskError::Spec(_) => Status::invalid_argument(msg),
        TaskError::Record(RecordError::InUse { .. }) | TaskError::State(_) => {
            Status::failed_precondition(msg)
        }
        TaskError::Image(e) => image_status(e),
        TaskError::Shim { id, status } => Status::new(
            status.code(),
            format!("container {id}: {}", status.message()),
        ),
        _ => Status::internal(msg),
    }
}

/// The gRPC status of a build error.
pub fn build_status(e: BuildError) -> Status {
    let msg = e.to_string();
    match e {
        BuildError::Parse(_) | BuildError::Step { .. } | BuildError::Invalid(_) => {
            Status::invalid_argument(msg)
        }
        BuildError::RunFailed { .. } => Status::aborted(msg),
        BuildError::Image(e) => image_status(e),
        BuildError::Task(e) => task_status(e),
        BuildError::Io { .. } => Status::internal(msg),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_errors_get_the_grpc_code_a_client_acts_on() {
        let reg = |kind| ImageError::Registry {
            what: "fetch manifest r/x:latest".into(),
            why: "connection refused".into(),
            kind,
        };
        for (kind, code) in [
            (RegistryFailure::Unreachable, tonic::Code::Unavailable),
            (RegistryFailure::NotFound, tonic::Code::NotFound),
            (RegistryFailure::Unauthorized, tonic::Code::Unauthenticated),
            (RegistryFailure::Other, tonic::Code::Unknown),
        ] {
            assert_eq!(image_status(reg(kind)).code(), code, "{kind:?}");
        }
        assert_eq!(
            image_status(ImageError::NotFound("x".into())).code(),
            tonic::Code::NotFound
        );
        assert_eq!(
            image_status(ImageError::LeaseExists("l".into())).code(),
            tonic::Code::AlreadyExists
        );
        assert_eq!(
            image_status(ImageError::Invalid("bad".into())).code(),
            tonic::Code::InvalidArgument
        );
    }
}
