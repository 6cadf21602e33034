//! Properties over many generated vote sequences.

use std::collections::HashMap;

use oponn_core::VoteChoice;
use oponn_core::domain::OptionId;
use oponn_testkit::{TestOponn, block_on};
use proptest::prelude::*;

use crate::helpers::{request, voter};

#[derive(Debug, Clone)]
enum Attempt {
    Option(u32),
    WriteIn(String),
}

fn attempt() -> impl Strategy<Value = Attempt> {
    prop_oneof![
        (0u32..6).prop_map(Attempt::Option),
        prop::sample::select(vec!["tea", "TEA", " Tea ", "coffee", "Coffee", "", "water"])
            .prop_map(|text| Attempt::WriteIn(text.to_owned())),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Whatever mix of voters, options, write-ins and refusals: the tally
    /// counts exactly the accepted votes, per option, with seq = total.
    #[test]
    fn tally_equals_accepted_votes(attempts in prop::collection::vec((0u8..12, attempt()), 0..60)) {
        let (tally, accepted) = block_on(async {
            let oponn = TestOponn::new();
            let mut open = request(&["tea", "coffee"]);
            open.allow_write_in = true;
            let ballot = oponn.create(open).await;
            let mut accepted: HashMap<OptionId, u64> = HashMap::new();
            for (who, attempt) in attempts {
                let choice = match attempt {
                    Attempt::Option(n) => VoteChoice::Option(OptionId::new(n)),
                    Attempt::WriteIn(text) => VoteChoice::WriteIn(text),
                };
                let who = voter(&format!("voter {who}"));
                if let Ok(receipt) = oponn.service().cast_vote(&ballot.id(), &who, choice).await {
                    *accepted.entry(receipt.option_id()).or_default() += 1;
                }
            }
            (oponn.service().tally(&ballot.id()).await.unwrap(), accepted)
        });
        let accepted_total: u64 = accepted.values().sum();
        prop_assert_eq!(tally.total(), accepted_total);
        prop_assert_eq!(tally.seq(), accepted_total);
        prop_assert!(accepted_total <= 12, "one vote per voter");
        for (option, count) in accepted {
            prop_assert_eq!(tally.count(option), count);
        }
    }
}
