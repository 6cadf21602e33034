//! The [`Broadcaster`] contract.

use std::sync::Arc;

use futures_util::StreamExt as _;
use oponn_core::domain::{BallotId, OptionId, Tally, TallyEvent};
use oponn_core::ports::{Broadcaster, TallyStream};

use super::within_deadline;

fn event(ballot: BallotId, seq: u64) -> TallyEvent {
    TallyEvent {
        ballot_id: ballot,
        tally: Tally::new(seq, [(OptionId::new(1), seq)]),
    }
}

async fn next(stream: &mut TallyStream) -> Tally {
    within_deadline("a tally arriving", stream.next())
        .await
        .expect("the tally stream stays open")
}

/// A tally published after subscribing arrives, intact.
pub async fn subscriber_receives_a_later_tally(broadcaster: Arc<dyn Broadcaster>) {
    let ballot = BallotId::generate();
    let mut stream = broadcaster.subscribe(&ballot).await.unwrap();
    let sent = event(ballot, 1);
    broadcaster.publish(&sent).await.unwrap();
    assert_eq!(next(&mut stream).await, sent.tally);
}

/// Every subscriber of a ballot receives its tallies.
pub async fn every_subscriber_receives_it(broadcaster: Arc<dyn Broadcaster>) {
    let ballot = BallotId::generate();
    let mut first = broadcaster.subscribe(&ballot).await.unwrap();
    let mut second = broadcaster.subscribe(&ballot).await.unwrap();
    broadcaster.publish(&event(ballot, 1)).await.unwrap();
    assert_eq!(next(&mut first).await.seq(), 1);
    assert_eq!(next(&mut second).await.seq(), 1);
}

/// A subscriber sees its own ballot's tallies and no other's.
pub async fn subscribers_see_only_their_ballot(broadcaster: Arc<dyn Broadcaster>) {
    let (mine, other) = (BallotId::generate(), BallotId::generate());
    let mut stream = broadcaster.subscribe(&mine).await.unwrap();
    let _other_watcher = broadcaster.subscribe(&other).await.unwrap();
    broadcaster.publish(&event(other, 7)).await.unwrap();
    broadcaster.publish(&event(mine, 1)).await.unwrap();
    assert_eq!(next(&mut stream).await, event(mine, 1).tally);
}

/// After a burst of 200 tallies, the last one a subscriber gets is the latest.
pub async fn a_burst_ends_with_the_latest_tally(broadcaster: Arc<dyn Broadcaster>) {
    let ballot = BallotId::generate();
    let mut stream = broadcaster.subscribe(&ballot).await.unwrap();
    for seq in 1..=200 {
        broadcaster.publish(&event(ballot, seq)).await.unwrap();
    }
    within_deadline("the latest tally arriving", async {
        while next(&mut stream).await.seq() != 200 {}
    })
    .await;
}

/// Pruning idle state never cuts off a ballot someone watches.
pub async fn pruning_spares_watched_ballots(broadcaster: Arc<dyn Broadcaster>) {
    let ballot = BallotId::generate();
    let mut stream = broadcaster.subscribe(&ballot).await.unwrap();
    broadcaster.prune_idle();
    broadcaster.publish(&event(ballot, 1)).await.unwrap();
    assert_eq!(next(&mut stream).await.seq(), 1);
}
