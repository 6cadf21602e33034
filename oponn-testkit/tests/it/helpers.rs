//! Small builders shared by the tests.

use oponn_core::domain::{BallotRequest, BallotSettings, MethodRequest, StartRequest, VoterId};

pub(crate) fn request(options: &[&str]) -> BallotRequest {
    BallotRequest {
        measure: "where to lunch".to_owned(),
        options: options.iter().map(|o| (*o).to_owned()).collect(),
        allow_write_in: false,
        start: StartRequest::Now,
        window: 0.into(),
        settings: BallotSettings::default(),
        method: MethodRequest::Single,
    }
}

pub(crate) fn voter(name: &str) -> VoterId {
    VoterId::new(name)
}
