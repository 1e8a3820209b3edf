//! Start order (`after=`): which programs a program waits for, checked
//! for cycles before anything runs, and the rules a start and a stop
//! follow. Pure functions of names and states, tested without processes.

/// The first cycle in the order, as the path a user reads: `a -> b -> a`.
/// `after(i)` lists the indices program `i` starts after.
pub fn find_cycle(names: &[&str], after: &[Vec<usize>]) -> Option<String> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        OnPath,
        Done,
    }
    let mut marks = vec![Mark::New; names.len()];
    let mut path: Vec<usize> = Vec::new();
    // Depth first, with an explicit stack of (node, next edge to follow).
    for start in 0..names.len() {
        if marks.get(start) != Some(&Mark::New) {
            continue;
        }
        let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
        if let Some(m) = marks.get_mut(start) {
            *m = Mark::OnPath;
        }
        path.push(start);
        while let Some(&mut (node, ref mut edge)) = stack.last_mut() {
            let next = after.get(node).and_then(|deps| deps.get(*edge)).copied();
            *edge += 1;
            match next {
                Some(dep) => match marks.get(dep).copied() {
                    Some(Mark::New) => {
                        if let Some(m) = marks.get_mut(dep) {
                            *m = Mark::OnPath;
                        }
                        path.push(dep);
                        stack.push((dep, 0));
                    }
                    Some(Mark::OnPath) => {
                        let from = path.iter().position(|&n| n == dep).unwrap_or(0);
                        let cycle: Vec<&str> = path
                            .get(from..)
                            .unwrap_or(&[])
                            .iter()
                            .chain(std::iter::once(&dep))
                            .filter_map(|&n| names.get(n).copied())
                            .collect();
                        return Some(cycle.join(" -> "));
                    }
                    Some(Mark::Done) | None => {}
                },
                None => {
                    if let Some(m) = marks.get_mut(node) {
                        *m = Mark::Done;
                    }
                    path.pop();
                    stack.pop();
                }
            }
        }
    }
    None
}

/// The programs of `after` that are not up, by `is_up`: a start waits
/// until this is empty.
pub fn not_up(after: &[String], is_up: impl Fn(&str) -> bool) -> Vec<&str> {
    after
        .iter()
        .map(String::as_str)
        .filter(|name| !is_up(name))
        .collect()
}

/// The longest a stop in reverse order can take: along each chain of
/// `after`, the sum of the waits, the longest chain's. `waits[i]` is
/// program `i`'s stopwaitsecs; the order has no cycle.
pub fn longest_chain(waits: &[f64], after: &[Vec<usize>]) -> f64 {
    // Program i stops once every program after it has: its own wait on
    // top of the longest of theirs.
    let mut memo: Vec<Option<f64>> = vec![None; waits.len()];
    fn chain(i: usize, waits: &[f64], after: &[Vec<usize>], memo: &mut [Option<f64>]) -> f64 {
        if let Some(Some(known)) = memo.get(i) {
            return *known;
        }
        // Guard against a cycle all the same: a node on the way counts 0.
        if let Some(slot) = memo.get_mut(i) {
            *slot = Some(0.0);
        }
        let dependents: Vec<usize> = (0..after.len())
            .filter(|&j| after.get(j).is_some_and(|deps| deps.contains(&i)))
            .collect();
        let longest = dependents
            .into_iter()
            .map(|j| chain(j, waits, after, memo))
            .fold(0.0, f64::max);
        let total = waits.get(i).copied().unwrap_or(0.0) + longest;
        if let Some(slot) = memo.get_mut(i) {
            *slot = Some(total);
        }
        total
    }
    (0..waits.len())
        .map(|i| chain(i, waits, after, &mut memo))
        .fold(0.0, f64::max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_order_no_cycle() {
        assert_eq!(find_cycle(&["a", "b"], &[vec![], vec![]]), None);
        assert_eq!(
            find_cycle(&["a", "b", "c"], &[vec![], vec![0], vec![0, 1]]),
            None
        );
    }

    #[test]
    fn a_cycle_is_named_in_full() {
        assert_eq!(
            find_cycle(&["a", "b"], &[vec![1], vec![0]]).as_deref(),
            Some("a -> b -> a")
        );
        assert_eq!(
            find_cycle(&["x", "a", "b", "c"], &[vec![], vec![2], vec![3], vec![1]]).as_deref(),
            Some("a -> b -> c -> a")
        );
        // Reached through a program outside the cycle.
        assert_eq!(
            find_cycle(&["top", "a", "b"], &[vec![1], vec![2], vec![1]]).as_deref(),
            Some("a -> b -> a")
        );
        assert_eq!(find_cycle(&["a"], &[vec![0]]).as_deref(), Some("a -> a"));
    }

    #[test]
    fn the_longest_stop_is_the_longest_chain() {
        // c after b after a; d alone.
        let after = vec![vec![], vec![0], vec![1], vec![]];
        assert_eq!(longest_chain(&[1.0, 2.0, 3.0, 5.0], &after), 6.0);
        assert_eq!(longest_chain(&[1.0, 2.0, 3.0, 7.0], &after), 7.0);
        assert_eq!(longest_chain(&[], &[]), 0.0);
    }

    #[test]
    fn a_start_waits_for_what_is_not_up() {
        let after = vec!["db".to_string(), "cache".to_string()];
        assert_eq!(not_up(&after, |n| n == "cache"), ["db"]);
        assert!(not_up(&after, |_| true).is_empty());
        assert!(not_up(&[], |_| false).is_empty());
    }
}
