//! Slices on one Perfetto track must nest. Spans of one thread usually do, but async spans
//! (and OTLP spans, which have no thread) overlap: they are spread over lanes, each a track
//! whose slices nest, and every lane's begin/end events are put in an order Perfetto accepts.

/// A slice to place: its interval and the caller's index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interval {
    /// Start (ns).
    pub start: i64,
    /// End (ns), not before `start`.
    pub end: i64,
    /// Whatever the caller needs to find the span again.
    pub index: usize,
}

/// One step of a lane: open or close the slice of `index` at `time`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The slice of `index` begins.
    Begin {
        /// When (ns).
        time: i64,
        /// The interval's index.
        index: usize,
    },
    /// The slice of `index` ends.
    End {
        /// When (ns).
        time: i64,
        /// The interval's index.
        index: usize,
    },
}

/// A lane being built: its steps so far and its open slices (end, index), innermost last.
#[derive(Default)]
struct Lane {
    steps: Vec<Step>,
    open: Vec<(i64, usize)>,
}

impl Lane {
    fn open_slice(&mut self, i: Interval) {
        self.steps.push(Step::Begin {
            time: i.start,
            index: i.index,
        });
        self.open.push((i.end, i.index));
    }

    /// Closes the open slices that end by `time`, innermost first.
    fn close_until(&mut self, time: i64) {
        while let Some(&(end, index)) = self.open.last() {
            if end > time {
                break;
            }
            self.steps.push(Step::End { time: end, index });
            self.open.pop();
        }
    }
}

/// Spreads `intervals` over as few lanes as the greedy rule needs (each interval goes to the
/// first lane where it nests) and returns each lane's steps in order.
pub fn assign(mut intervals: Vec<Interval>) -> Vec<Vec<Step>> {
    intervals.sort_by_key(|i| (i.start, std::cmp::Reverse(i.end), i.index));
    let mut lanes: Vec<Lane> = Vec::new();
    for interval in intervals {
        let mut placed = false;
        for lane in lanes.iter_mut() {
            lane.close_until(interval.start);
            if lane.open.last().is_none_or(|&(end, _)| interval.end <= end) {
                lane.open_slice(interval);
                placed = true;
                break;
            }
        }
        if !placed {
            let mut lane = Lane::default();
            lane.open_slice(interval);
            lanes.push(lane);
        }
    }
    lanes
        .into_iter()
        .map(|mut lane| {
            lane.close_until(i64::MAX);
            lane.steps
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn iv(start: i64, end: i64, index: usize) -> Interval {
        Interval { start, end, index }
    }

    #[test]
    fn nested_spans_share_one_lane_and_overlaps_get_another() {
        let lanes = assign(vec![iv(0, 10, 0), iv(2, 5, 1), iv(6, 10, 2), iv(8, 20, 3)]);
        assert_eq!(lanes.len(), 2);
        assert_eq!(
            lanes[0],
            [
                Step::Begin { time: 0, index: 0 },
                Step::Begin { time: 2, index: 1 },
                Step::End { time: 5, index: 1 },
                Step::Begin { time: 6, index: 2 },
                Step::End { time: 10, index: 2 },
                Step::End { time: 10, index: 0 },
            ]
        );
        assert_eq!(
            lanes[1],
            [
                Step::Begin { time: 8, index: 3 },
                Step::End { time: 20, index: 3 }
            ]
        );
    }

    proptest! {
        /// Every interval appears once, and each lane is a well-nested sequence in time order.
        #[test]
        fn lanes_nest_and_keep_every_interval(raw in proptest::collection::vec((0i64..1000, 0i64..200), 0..60)) {
            let intervals: Vec<Interval> = raw.iter().enumerate().map(|(i, &(s, d))| iv(s, s + d, i)).collect();
            let lanes = assign(intervals.clone());
            let mut seen = vec![0u32; intervals.len()];
            for lane in &lanes {
                let mut stack = Vec::new();
                let mut last = i64::MIN;
                for step in lane {
                    match *step {
                        Step::Begin { time, index } => {
                            prop_assert!(time >= last);
                            prop_assert_eq!(time, intervals[index].start);
                            last = time;
                            stack.push(index);
                            seen[index] += 1;
                        }
                        Step::End { time, index } => {
                            prop_assert!(time >= last);
                            prop_assert_eq!(time, intervals[index].end);
                            last = time;
                            prop_assert_eq!(stack.pop(), Some(index));
                        }
                    }
                }
                prop_assert!(stack.is_empty());
            }
            prop_assert!(seen.iter().all(|&n| n == 1));
        }
    }
}
