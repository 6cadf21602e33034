//! Embeds Oponn's core with in-memory adapters: creates a ballot, watches
//! its tally live, and casts votes from a few simulated voters.
//!
//! Run with `cargo run --example embedded_vote`.

use std::sync::Arc;

use futures_util::StreamExt as _;
use oponn_adapters::local_key::LocalKeyWrapper;
use oponn_adapters::memory::{MemoryBroadcaster, MemoryLock, MemoryRepository};
use oponn_core::crypto::SymmetricKey;
use oponn_core::domain::{
    BallotRequest, BallotSettings, MethodRequest, Results, StartRequest, VoterId, split_option_text,
};
use oponn_core::ports::SystemClock;
use oponn_core::{BallotService, CastVoteError, Ports, ServiceSettings, VoteChoice};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let service = Arc::new(BallotService::new(
        Ports {
            repository: Arc::new(MemoryRepository::new()),
            lock: Arc::new(MemoryLock::new()),
            broadcaster: Arc::new(MemoryBroadcaster::new()),
            key_wrapper: Arc::new(LocalKeyWrapper::new(SymmetricKey::generate())),
            clock: Arc::new(SystemClock),
        },
        ServiceSettings::new(*SymmetricKey::generate().expose_bytes()),
    ));

    let ballot = service
        .create_ballot(
            &BallotRequest {
                measure: "Where should the team lunch?".to_owned(),
                options: split_option_text("pizza, ramen, tacos"),
                allow_write_in: true,
                start: StartRequest::Now,
                window: 60.into(),
                settings: BallotSettings::default(),
                method: MethodRequest::Single,
            },
            None,
        )
        .await?;
    println!("ballot {} — {}", ballot.id(), ballot.measure());
    println!("status: {}", ballot.status_at(service.now()).label());

    // Watch the tally: the current one arrives first, then one per vote
    // (a burst may be coalesced into its latest tally).
    let mut tallies = service.subscribe(&ballot.id()).await?;
    let watcher = {
        let service = Arc::clone(&service);
        let id = ballot.id();
        tokio::spawn(async move {
            while let Some(tally) = tallies.next().await {
                let (ballot, _) = match service.results(&id).await {
                    Ok(found) => found,
                    Err(error) => return eprintln!("results unavailable: {error}"),
                };
                let results = Results::new(&ballot, &tally);
                let line: Vec<String> = results
                    .rows
                    .iter()
                    .map(|row| format!("{} {} ({:.0}%)", row.label, row.count, row.percent))
                    .collect();
                println!("live #{:>2}: {}", results.seq, line.join(" · "));
                if results.total == 6 {
                    break;
                }
            }
        })
    };

    let ramen = ballot.options()[1].id();
    let votes = [
        ("ada", VoteChoice::Option(ramen)),
        ("grace", VoteChoice::Option(ballot.options()[0].id())),
        ("alan", VoteChoice::WriteIn("Dim  Sum".to_owned())),
        ("edsger", VoteChoice::WriteIn("dim sum".to_owned())),
        ("barbara", VoteChoice::Option(ramen)),
        ("ken", VoteChoice::Option(ramen)),
    ];
    for (name, choice) in votes {
        let receipt = service
            .cast_vote(&ballot.id(), &VoterId::new(name), choice)
            .await?;
        println!("{name} voted (tally #{})", receipt.tally.seq());
    }

    // One vote per voter: a second attempt is refused with the user-facing message.
    match service
        .cast_vote(
            &ballot.id(),
            &VoterId::new("ada"),
            VoteChoice::Option(ramen),
        )
        .await
    {
        Err(refusal @ CastVoteError::AlreadyVoted) => {
            println!("ada again: {}", refusal.user_message().unwrap_or_default());
        }
        other => return Err(format!("expected a refusal, got {other:?}").into()),
    }

    watcher.await?;
    Ok(())
}
