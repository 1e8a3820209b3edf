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
    fn a_start_waits_for_what_is_not_up() {
        let after = vec!["db".to_string(), "cache".to_string()];
        assert_eq!(not_up(&after, |n| n == "cache"), ["db"]);
        assert!(not_up(&after, |_| true).is_empty());
        assert!(not_up(&[], |_| false).is_empty());
    }
}
