//! Counting ranked ballots: instant-runoff (the winner) and the Condorcet
//! check (the pairwise matrix, the Condorcet winner, the Schulze order).
//!
//! Both counts work on a *profile*: each distinct ranking with how many
//! voters cast it, never the votes themselves, so a count costs time in
//! proportion to the number of distinct rankings, however many people
//! voted. Rankings list option ids, most preferred first, each at most
//! once; a ranking may be partial, and may name options the count does not
//! know (they are ignored).
//!
//! # Instant-runoff
//!
//! Round by round, an option with more than half of the ballots still
//! active wins. Otherwise exactly one option, the one with the fewest
//! votes, is eliminated, and its ballots pass to their next ranked option
//! still standing; a ballot with no standing option left is *exhausted*.
//! Ties for elimination are broken backwards: among the tied options,
//! keep those with the fewest votes in the previous round, and repeat one
//! round further back while more than one remains; if several remain after
//! the first round, the one latest in the ballot's option order goes. When
//! only two options remain and they are tied, no tie-break applies: there
//! is no single winner, and the result reports the tie.
//!
//! # Condorcet
//!
//! The pairwise matrix counts, for every pair of options, the ballots
//! ranking one above the other: a ranked option is above every unranked
//! one, and two unranked options are not compared. The Condorcet winner
//! beats every other option head to head, when there is one. The Schulze
//! order ranks options by their strongest beatpaths (winning strength):
//! its first group is every option no other beats (the Schulze winners),
//! the next every option beaten only by options already placed, and so on.

use std::collections::BTreeMap;

use super::ids::OptionId;

/// One distinct ranking and how many voters cast it.
pub type RankingCount<'a> = (&'a [OptionId], u64);

/// One round of an instant-runoff count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunoffRound {
    /// Every option still standing in this round, in the ballot's option
    /// order, with the ballots whose top standing choice it is (zeros
    /// included).
    pub counts: Vec<(OptionId, u64)>,
    /// Ballots with no standing option left.
    pub exhausted: u64,
    /// The option eliminated after this round (none in the last round).
    pub eliminated: Option<OptionId>,
}

/// An instant-runoff count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstantRunoff {
    /// The rounds, first to last.
    pub rounds: Vec<RunoffRound>,
    /// The winner: the option with more than half of the active ballots in
    /// the last round, if one has.
    pub winner: Option<OptionId>,
    /// When there is no winner: the options tied in the last round.
    pub tied: Vec<OptionId>,
}

/// The pairwise comparisons and what follows from them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condorcet {
    /// Every pair `(a, b)` of options with `a` before `b` in the ballot's
    /// option order, with the ballots ranking `a` above `b` and `b` above
    /// `a`.
    pub pairwise: Vec<Pairwise>,
    /// The option that beats every other head to head, if one does.
    pub winner: Option<OptionId>,
    /// The Schulze order: groups of options, best first; the options of
    /// one group are tied.
    pub schulze_ranking: Vec<Vec<OptionId>>,
}

/// One pair's head-to-head counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pairwise {
    /// The option earlier in the ballot's option order.
    pub a: OptionId,
    /// The option later in it.
    pub b: OptionId,
    /// Ballots ranking `a` above `b`.
    pub a_over_b: u64,
    /// Ballots ranking `b` above `a`.
    pub b_over_a: u64,
}

/// Counts `profile` by instant-runoff over `options`, the ballot's options
/// in its order.
pub fn instant_runoff(options: &[OptionId], profile: &[RankingCount<'_>]) -> InstantRunoff {
    let mut standing: Vec<OptionId> = options.to_vec();
    let mut rounds: Vec<RunoffRound> = Vec::new();
    loop {
        let mut counts: BTreeMap<OptionId, u64> =
            standing.iter().map(|option| (*option, 0)).collect();
        let mut exhausted: u64 = 0;
        for (ranking, voters) in profile {
            match ranking.iter().find(|option| counts.contains_key(option)) {
                Some(top) => {
                    if let Some(count) = counts.get_mut(top) {
                        *count = count.saturating_add(*voters);
                    }
                }
                None => exhausted = exhausted.saturating_add(*voters),
            }
        }
        let active: u64 = counts
            .values()
            .fold(0u64, |total, count| total.saturating_add(*count));
        let ordered: Vec<(OptionId, u64)> = standing
            .iter()
            .map(|option| (*option, counts.get(option).copied().unwrap_or(0)))
            .collect();
        let majority = ordered
            .iter()
            .find(|(_, count)| u128::from(*count) * 2 > u128::from(active))
            .map(|(option, _)| *option);
        if majority.is_some() || standing.len() <= 2 {
            let tied = if majority.is_some() {
                Vec::new()
            } else {
                let top = ordered.iter().map(|(_, count)| *count).max().unwrap_or(0);
                ordered
                    .iter()
                    .filter(|(_, count)| *count == top)
                    .map(|(option, _)| *option)
                    .collect()
            };
            rounds.push(RunoffRound {
                counts: ordered,
                exhausted,
                eliminated: None,
            });
            return InstantRunoff {
                rounds,
                winner: majority,
                tied,
            };
        }
        let loser = elimination(&ordered, &rounds);
        rounds.push(RunoffRound {
            counts: ordered,
            exhausted,
            eliminated: Some(loser),
        });
        standing.retain(|option| *option != loser);
    }
}

/// The option eliminated after the round with `counts` (in option order),
/// given the rounds before it: the fewest votes, ties broken backwards
/// through earlier rounds, then the latest in option order.
fn elimination(counts: &[(OptionId, u64)], earlier: &[RunoffRound]) -> OptionId {
    let fewest = counts.iter().map(|(_, count)| *count).min().unwrap_or(0);
    let mut tied: Vec<OptionId> = counts
        .iter()
        .filter(|(_, count)| *count == fewest)
        .map(|(option, _)| *option)
        .collect();
    for round in earlier.iter().rev() {
        if tied.len() <= 1 {
            break;
        }
        let count_in = |option: &OptionId| {
            round
                .counts
                .iter()
                .find(|(standing, _)| standing == option)
                .map_or(0, |(_, count)| *count)
        };
        let fewest = tied.iter().map(count_in).min().unwrap_or(0);
        tied.retain(|option| count_in(option) == fewest);
    }
    // `counts` is in option order, and so is `tied`: the latest goes.
    tied.last()
        .copied()
        .or_else(|| counts.last().map(|(option, _)| *option))
        .unwrap_or(OptionId::new(0))
}

/// The head-to-head matrix of `profile` over `options`: `matrix[i][j]` is
/// the number of ballots ranking `options[i]` above `options[j]`.
fn pairwise_matrix(options: &[OptionId], profile: &[RankingCount<'_>]) -> Vec<Vec<u64>> {
    let index: BTreeMap<OptionId, usize> = options
        .iter()
        .enumerate()
        .map(|(at, option)| (*option, at))
        .collect();
    let size = options.len();
    let mut matrix = vec![vec![0u64; size]; size];
    let mut is_ranked = vec![false; size];
    for (ranking, voters) in profile {
        // Each known option's place in this ranking, once.
        is_ranked.fill(false);
        let mut ranked: Vec<usize> = Vec::with_capacity(ranking.len());
        for option in ranking.iter() {
            if let Some(&at) = index.get(option)
                && !is_ranked[at]
            {
                is_ranked[at] = true;
                ranked.push(at);
            }
        }
        for (place, &above) in ranked.iter().enumerate() {
            let row = &mut matrix[above];
            // Above every option ranked after it…
            for &below in &ranked[place + 1..] {
                row[below] = row[below].saturating_add(*voters);
            }
            // …and above every option not ranked at all.
            for (below, cell) in row.iter_mut().enumerate() {
                if !is_ranked[below] {
                    *cell = cell.saturating_add(*voters);
                }
            }
        }
    }
    matrix
}

/// The Condorcet check of `profile` over `options`, the ballot's options
/// in its order.
pub fn condorcet(options: &[OptionId], profile: &[RankingCount<'_>]) -> Condorcet {
    let matrix = pairwise_matrix(options, profile);
    let size = options.len();
    let mut pairwise = Vec::new();
    for a in 0..size {
        for b in a + 1..size {
            pairwise.push(Pairwise {
                a: options[a],
                b: options[b],
                a_over_b: matrix[a][b],
                b_over_a: matrix[b][a],
            });
        }
    }
    let winner = (0..size)
        .find(|&a| (0..size).all(|b| a == b || matrix[a][b] > matrix[b][a]))
        .map(|a| options[a]);
    Condorcet {
        pairwise,
        winner,
        schulze_ranking: schulze(options, &matrix),
    }
}

/// The Schulze order from the head-to-head `matrix`: strongest paths by
/// winning strength (Floyd–Warshall), then tiers of options no remaining
/// option beats.
fn schulze(options: &[OptionId], matrix: &[Vec<u64>]) -> Vec<Vec<OptionId>> {
    let size = options.len();
    let strength = strongest_paths(matrix);
    let beats = |a: usize, b: usize| strength[a][b] > strength[b][a];
    let mut remaining: Vec<usize> = (0..size).collect();
    let mut ranking = Vec::new();
    while !remaining.is_empty() {
        let tier: Vec<usize> = remaining
            .iter()
            .copied()
            .filter(|&a| !remaining.iter().any(|&b| beats(b, a)))
            .collect();
        // The relation is a strict partial order, so some option is never
        // beaten; should that ever fail, the rest tie rather than loop.
        let tier = if tier.is_empty() {
            remaining.clone()
        } else {
            tier
        };
        remaining.retain(|a| !tier.contains(a));
        ranking.push(tier.into_iter().map(|a| options[a]).collect());
    }
    ranking
}

/// `strength[a][b]`: the strength of the strongest path from `a` to `b`,
/// a path's strength being its weakest link, a link `a → b` weighing
/// `matrix[a][b]` when `a` beats `b` head to head, else nothing.
fn strongest_paths(matrix: &[Vec<u64>]) -> Vec<Vec<u64>> {
    let size = matrix.len();
    let mut strength = vec![vec![0u64; size]; size];
    for a in 0..size {
        for b in 0..size {
            if a != b && matrix[a][b] > matrix[b][a] {
                strength[a][b] = matrix[a][b];
            }
        }
    }
    for via in 0..size {
        for a in 0..size {
            if a == via {
                continue;
            }
            for b in 0..size {
                if b == a || b == via {
                    continue;
                }
                let through = strength[a][via].min(strength[via][b]);
                if through > strength[a][b] {
                    strength[a][b] = through;
                }
            }
        }
    }
    strength
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    fn ids(numbers: &[u32]) -> Vec<OptionId> {
        numbers.iter().map(|n| OptionId::new(*n)).collect()
    }

    /// Counts the raw `ballots`, one entry per voter, as distinct rankings.
    fn profile_of(ballots: &[Vec<OptionId>]) -> Vec<(Vec<OptionId>, u64)> {
        let mut counts: BTreeMap<Vec<OptionId>, u64> = BTreeMap::new();
        for ballot in ballots {
            *counts.entry(ballot.clone()).or_insert(0) += 1;
        }
        counts.into_iter().collect()
    }

    fn borrowed(profile: &[(Vec<OptionId>, u64)]) -> Vec<RankingCount<'_>> {
        profile
            .iter()
            .map(|(ranking, count)| (ranking.as_slice(), *count))
            .collect()
    }

    fn runoff(options: &[u32], ballots: &[&[u32]]) -> InstantRunoff {
        let ballots: Vec<Vec<OptionId>> = ballots.iter().map(|b| ids(b)).collect();
        let profile = profile_of(&ballots);
        instant_runoff(&ids(options), &borrowed(&profile))
    }

    #[test]
    fn a_first_round_majority_wins_at_once() {
        let count = runoff(&[1, 2, 3], &[&[1], &[1, 2], &[2, 3]]);
        assert_eq!(count.winner, Some(OptionId::new(1)));
        assert_eq!(count.rounds.len(), 1);
        assert_eq!(
            count.rounds[0].counts,
            ids(&[1, 2, 3])
                .into_iter()
                .zip([2, 1, 0])
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn eliminated_ballots_pass_on_or_exhaust() {
        // 1: 3 first preferences, 2: 2, 3: 2 (one lists 2 next, one nothing).
        let count = runoff(
            &[1, 2, 3],
            &[&[1], &[1], &[1], &[2, 1], &[2, 3], &[3, 2], &[3]],
        );
        // Round 1: 2 and 3 tie at 2; no earlier round; the latest (3) goes.
        assert_eq!(count.rounds[0].eliminated, Some(OptionId::new(3)));
        // Round 2: 1 has 3, 2 has 3 (its 2 and 3→2), one ballot exhausted.
        assert_eq!(
            count.rounds[1].counts,
            ids(&[1, 2]).into_iter().zip([3, 3]).collect::<Vec<_>>()
        );
        assert_eq!(count.rounds[1].exhausted, 1);
        // Two remain, tied: no winner, the tie reported.
        assert_eq!(count.winner, None);
        assert_eq!(count.tied, ids(&[1, 2]));
    }

    #[test]
    fn an_elimination_tie_no_round_breaks_removes_the_latest_option() {
        let count = runoff(
            &[1, 2, 3, 4],
            &[
                &[1],
                &[1],
                &[1],
                &[1],
                &[2],
                &[2],
                &[2],
                &[3],
                &[3],
                &[3],
                &[4, 2],
                &[4, 3],
            ],
        );
        // Round 1: 1:4, 2:3, 3:3, 4:2; 4 goes, one ballot each to 2 and 3.
        assert_eq!(count.rounds[0].eliminated, Some(OptionId::new(4)));
        // Round 2: all three tie at 4. Looking back, 2 and 3 had 3 in
        // round 1 against 1's 4; that was the first round, so the latest
        // of 2 and 3 in the option order goes.
        assert_eq!(
            count.rounds[1].counts,
            ids(&[1, 2, 3])
                .into_iter()
                .zip([4, 4, 4])
                .collect::<Vec<_>>()
        );
        assert_eq!(count.rounds[1].eliminated, Some(OptionId::new(3)));
        // Round 3: 3's ballots had nothing after it: 1:4, 2:4, 4 exhausted.
        assert_eq!(count.rounds[2].exhausted, 4);
        assert_eq!((count.winner, count.tied), (None, ids(&[1, 2])));
    }

    #[test]
    fn a_look_back_spares_the_option_that_was_stronger_before() {
        let count = runoff(
            &[1, 2, 3, 4],
            &[
                &[1],
                &[1],
                &[1],
                &[1],
                &[1],
                &[1],
                &[1],
                &[2],
                &[2],
                &[2],
                &[3],
                &[3],
                &[3],
                &[3],
                &[4, 2],
            ],
        );
        // Round 1: 1:7, 2:3, 3:4, 4:1; 4 goes, its ballot to 2.
        // Round 2: 2 and 3 tie at 4.
        assert_eq!(
            count.rounds[1].counts,
            ids(&[1, 2, 3])
                .into_iter()
                .zip([7, 4, 4])
                .collect::<Vec<_>>()
        );
        // In round 1, 2 had 3 and 3 had 4: 2 was weaker, so 2 goes, though
        // 3 is later in the option order.
        assert_eq!(count.rounds[1].eliminated, Some(OptionId::new(2)));
        assert_eq!(count.winner, Some(OptionId::new(1)));
    }

    #[test]
    fn no_ballots_is_a_tie_of_the_last_two() {
        let count = runoff(&[1, 2, 3], &[]);
        assert_eq!(count.rounds[0].eliminated, Some(OptionId::new(3)));
        assert_eq!(count.winner, None);
        assert_eq!(count.tied, ids(&[1, 2]));
    }

    #[test]
    fn the_condorcet_check_finds_a_winner_irv_misses() {
        // The classic centre squeeze: 2 beats both head to head but has
        // the fewest first preferences and is eliminated first.
        let ballots: Vec<Vec<OptionId>> = [
            vec![&[1, 2, 3][..]; 4],
            vec![&[3, 2, 1][..]; 4],
            vec![&[2, 1, 3][..]; 3],
        ]
        .concat()
        .into_iter()
        .map(ids)
        .collect();
        let profile = profile_of(&ballots);
        let options = ids(&[1, 2, 3]);
        let irv = instant_runoff(&options, &borrowed(&profile));
        assert_eq!(irv.rounds[0].eliminated, Some(OptionId::new(2)));
        let check = condorcet(&options, &borrowed(&profile));
        assert_eq!(check.winner, Some(OptionId::new(2)));
        assert_eq!(check.schulze_ranking[0], ids(&[2]));
        assert_eq!(
            check.pairwise[0],
            Pairwise {
                a: OptionId::new(1),
                b: OptionId::new(2),
                a_over_b: 4,
                b_over_a: 7
            }
        );
    }

    #[test]
    fn unranked_options_lose_to_ranked_ones_and_are_not_compared() {
        let profile = profile_of(&[ids(&[2])]);
        let check = condorcet(&ids(&[1, 2, 3]), &borrowed(&profile));
        let pair = |a: u32, b: u32| {
            check
                .pairwise
                .iter()
                .find(|pair| pair.a == OptionId::new(a) && pair.b == OptionId::new(b))
                .map(|pair| (pair.a_over_b, pair.b_over_a))
        };
        assert_eq!(pair(1, 2), Some((0, 1)));
        assert_eq!(pair(2, 3), Some((1, 0)));
        assert_eq!(pair(1, 3), Some((0, 0)));
        assert_eq!(check.winner, Some(OptionId::new(2)));
        assert_eq!(check.schulze_ranking, vec![ids(&[2]), ids(&[1, 3])]);
    }

    #[test]
    fn a_cycle_has_no_condorcet_winner_but_a_schulze_order() {
        // 1 > 2 (by 5 to 4), 2 > 3 (by 6 to 3), 3 > 1 (by 5 to 4).
        let ballots: Vec<Vec<OptionId>> = [
            vec![&[1, 2, 3][..]; 3],
            vec![&[2, 3, 1][..]; 4],
            vec![&[3, 1, 2][..]; 2],
        ]
        .concat()
        .into_iter()
        .map(ids)
        .collect();
        let profile = profile_of(&ballots);
        let check = condorcet(&ids(&[1, 2, 3]), &borrowed(&profile));
        assert_eq!(check.winner, None);
        // Links 1→2: 5, 2→3: 7, 3→1: 6. Strongest paths: 2→1 is 6 (via 3)
        // against 1→2's 5; 2→3 is 7 against 3→2's 5 (via 1); 3→1 is 6
        // against 1→3's 5 (via 2). So 2, then 3, then 1.
        assert_eq!(check.schulze_ranking, vec![ids(&[2]), ids(&[3]), ids(&[1])]);
    }

    // --- Reference definitions, for the properties below -------------

    /// Instant-runoff recomputed from the raw ballots, one per voter.
    fn reference_runoff(options: &[OptionId], ballots: &[Vec<OptionId>]) -> InstantRunoff {
        let mut standing = options.to_vec();
        let mut rounds: Vec<RunoffRound> = Vec::new();
        loop {
            let mut counts = vec![0u64; standing.len()];
            let mut exhausted = 0;
            for ballot in ballots {
                let top = ballot
                    .iter()
                    .find_map(|option| standing.iter().position(|s| s == option));
                match top {
                    Some(at) => counts[at] += 1,
                    None => exhausted += 1,
                }
            }
            let active: u64 = counts.iter().sum();
            let ordered: Vec<(OptionId, u64)> = standing
                .iter()
                .copied()
                .zip(counts.iter().copied())
                .collect();
            if let Some(&(winner, _)) = ordered.iter().find(|(_, c)| 2 * c > active) {
                rounds.push(RunoffRound {
                    counts: ordered,
                    exhausted,
                    eliminated: None,
                });
                return InstantRunoff {
                    rounds,
                    winner: Some(winner),
                    tied: vec![],
                };
            }
            if standing.len() <= 2 {
                let top = counts.iter().max().copied().unwrap_or(0);
                let tied = ordered
                    .iter()
                    .filter(|(_, c)| *c == top)
                    .map(|(o, _)| *o)
                    .collect();
                rounds.push(RunoffRound {
                    counts: ordered,
                    exhausted,
                    eliminated: None,
                });
                return InstantRunoff {
                    rounds,
                    winner: None,
                    tied,
                };
            }
            let low = counts.iter().min().copied().unwrap_or(0);
            let mut tied: Vec<OptionId> = ordered
                .iter()
                .filter(|(_, c)| *c == low)
                .map(|(o, _)| *o)
                .collect();
            let mut back = rounds.len();
            while tied.len() > 1 && back > 0 {
                back -= 1;
                let then = |o: &OptionId| {
                    rounds[back]
                        .counts
                        .iter()
                        .find(|(s, _)| s == o)
                        .map(|(_, c)| *c)
                        .unwrap_or(0)
                };
                let low = tied.iter().map(then).min().unwrap_or(0);
                tied.retain(|o| then(o) == low);
            }
            let loser = *tied.last().unwrap_or(&standing[0]);
            rounds.push(RunoffRound {
                counts: ordered,
                exhausted,
                eliminated: Some(loser),
            });
            standing.retain(|o| *o != loser);
        }
    }

    /// Head to head by brute force: for each ballot and pair, compare places.
    fn reference_pairwise(options: &[OptionId], ballots: &[Vec<OptionId>]) -> Vec<Vec<u64>> {
        let n = options.len();
        let mut matrix = vec![vec![0; n]; n];
        for ballot in ballots {
            let place = |o: OptionId| ballot.iter().position(|r| *r == o);
            for a in 0..n {
                for b in 0..n {
                    let above = match (place(options[a]), place(options[b])) {
                        (Some(pa), Some(pb)) => pa < pb,
                        (Some(_), None) => true,
                        _ => false,
                    };
                    if a != b && above {
                        matrix[a][b] += 1;
                    }
                }
            }
        }
        matrix
    }

    /// Schulze by its definition: every simple path's weakest link, the
    /// strongest over all paths, by exhaustive search.
    fn reference_strength(matrix: &[Vec<u64>]) -> Vec<Vec<u64>> {
        let n = matrix.len();
        let link = |a: usize, b: usize| {
            if matrix[a][b] > matrix[b][a] {
                matrix[a][b]
            } else {
                0
            }
        };
        let mut best = vec![vec![0; n]; n];
        fn walk(
            at: usize,
            weakest: u64,
            seen: &mut Vec<usize>,
            start: usize,
            link: &dyn Fn(usize, usize) -> u64,
            best: &mut Vec<Vec<u64>>,
            n: usize,
        ) {
            for next in 0..n {
                if seen.contains(&next) || link(at, next) == 0 {
                    continue;
                }
                let strength = weakest.min(link(at, next));
                if strength > best[start][next] {
                    best[start][next] = strength;
                }
                seen.push(next);
                walk(next, strength, seen, start, link, best, n);
                seen.pop();
            }
        }
        for start in 0..n {
            let mut seen = vec![start];
            walk(start, u64::MAX, &mut seen, start, &link, &mut best, n);
        }
        best
    }

    /// Random ballots over 1 to 5 options: partial rankings, empty ones
    /// (an exhausted ballot from the start), and one-option rankings.
    fn ballots() -> impl Strategy<Value = (usize, Vec<Vec<OptionId>>)> {
        (1usize..=5).prop_flat_map(|n| {
            let ballot = Just((1..=n as u32).collect::<Vec<u32>>())
                .prop_shuffle()
                .prop_flat_map(move |order| (0..=n).prop_map(move |len| ids(&order[..len])));
            (Just(n), prop::collection::vec(ballot, 0..40))
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(
            std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(2_000)
        ))]

        #[test]
        fn instant_runoff_matches_the_count_from_raw_ballots((n, ballots) in ballots()) {
            let options = ids(&(1..=n as u32).collect::<Vec<_>>());
            let profile = profile_of(&ballots);
            let counted = instant_runoff(&options, &borrowed(&profile));
            prop_assert_eq!(&counted, &reference_runoff(&options, &ballots));
            // Every round lists every standing option, and counts every ballot.
            for round in &counted.rounds {
                let total: u64 = round.counts.iter().map(|(_, c)| c).sum::<u64>() + round.exhausted;
                prop_assert_eq!(total, ballots.len() as u64);
            }
            // Either a winner or a tie, never both.
            prop_assert!(counted.winner.is_some() == counted.tied.is_empty());
        }

        #[test]
        fn pairwise_counts_match_brute_force((n, ballots) in ballots()) {
            let options = ids(&(1..=n as u32).collect::<Vec<_>>());
            let profile = profile_of(&ballots);
            let check = condorcet(&options, &borrowed(&profile));
            let reference = reference_pairwise(&options, &ballots);
            for pair in &check.pairwise {
                let a = options.iter().position(|o| *o == pair.a).unwrap_or(0);
                let b = options.iter().position(|o| *o == pair.b).unwrap_or(0);
                prop_assert_eq!((pair.a_over_b, pair.b_over_a), (reference[a][b], reference[b][a]));
            }
            prop_assert_eq!(check.pairwise.len(), n * n.saturating_sub(1) / 2);
            let winner = (0..n).find(|&a| (0..n).all(|b| a == b || reference[a][b] > reference[b][a]));
            prop_assert_eq!(check.winner, winner.map(|a| options[a]));
        }

        #[test]
        fn schulze_matches_its_definition((n, ballots) in ballots()) {
            let options = ids(&(1..=n as u32).collect::<Vec<_>>());
            let profile = profile_of(&ballots);
            let matrix = reference_pairwise(&options, &ballots);
            let strength = reference_strength(&matrix);
            prop_assert_eq!(&strongest_paths(&matrix), &strength);
            let ranking = condorcet(&options, &borrowed(&profile)).schulze_ranking;
            // Every option once; an option in an earlier group is never
            // beaten by one in a later group, and within a group none beats another.
            let flat: Vec<OptionId> = ranking.concat();
            prop_assert_eq!(flat.len(), n);
            let tier_of = |o: OptionId| ranking.iter().position(|t| t.contains(&o)).unwrap_or(usize::MAX);
            for a in 0..n {
                for b in 0..n {
                    let beats = strength[a][b] > strength[b][a];
                    if beats {
                        prop_assert!(tier_of(options[a]) < tier_of(options[b]));
                    }
                }
            }
            // The Condorcet winner, when there is one, is the only Schulze winner.
            if let Some(winner) = condorcet(&options, &borrowed(&profile)).winner {
                prop_assert_eq!(&ranking[0], &vec![winner]);
            }
        }
    }
}
