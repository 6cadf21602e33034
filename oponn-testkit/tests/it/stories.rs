//! The whole-service stories on in-memory adapters.

use std::sync::Arc;

use oponn_testkit::{TestOponn, block_on, stories};

#[test]
fn fifty_tasks_of_twenty_voters_are_counted_exactly() {
    block_on(stories::concurrent_distinct_voters_are_counted_exactly(
        Arc::clone(TestOponn::new().service()),
    ));
}

#[test]
fn one_voter_racing_itself_votes_once() {
    block_on(stories::one_voter_racing_itself_votes_once(Arc::clone(
        TestOponn::new().service(),
    )));
}

#[test]
fn write_ins_stop_at_the_limit() {
    block_on(stories::write_ins_stop_at_the_limit(Arc::clone(
        TestOponn::new().service(),
    )));
}

#[test]
fn racing_equal_write_ins_make_one_option() {
    block_on(stories::racing_equal_write_ins_make_one_option(Arc::clone(
        TestOponn::new().service(),
    )));
}
