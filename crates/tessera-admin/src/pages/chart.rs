//! A stacked bar chart per day, drawn as inline SVG by the template (`chart.html`): the geometry is
//! computed here, the colours are stylesheet classes (`.chart .s-…`), so the page needs neither
//! script nor `style-src 'unsafe-inline'`. Each chart carries a y-axis scale (0, half, the max), a
//! legend, a `<title>` per bar (hover), an `aria-label` summing it up and a data table for screen
//! readers and anyone who wants the exact figures.

use chrono::NaiveDate;

/// Plot height in SVG units; the plot starts at [`TOP`].
const PLOT_HEIGHT: u64 = 120;
const TOP: u64 = 10;
/// Room left of the bars for the y-axis labels.
const AXIS: u32 = 44;
const BAR_STEP: u32 = 40;
const BAR_WIDTH: u32 = 30;

/// One series: its name (legend, table header) and its stylesheet class.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Series {
    pub(crate) name: &'static str,
    pub(crate) class: &'static str,
}

/// One coloured piece of a bar.
#[derive(Debug)]
pub(crate) struct Segment {
    pub(crate) y: u64,
    pub(crate) height: u64,
    pub(crate) class: &'static str,
}

/// One day's bar.
#[derive(Debug)]
pub(crate) struct Column {
    pub(crate) x: u32,
    pub(crate) label_x: u32,
    /// Day of the month, under the bar.
    pub(crate) label: String,
    /// The date, for the data table.
    pub(crate) date: String,
    pub(crate) segments: Vec<Segment>,
    /// Hover text: the date and every series' count.
    pub(crate) title: String,
    pub(crate) values: Vec<u64>,
    pub(crate) total: u64,
}

/// A y-axis tick: its position and value.
#[derive(Debug)]
pub(crate) struct Tick {
    pub(crate) y: u64,
    pub(crate) value: u64,
}

/// Everything the template needs to draw one chart.
#[derive(Debug)]
pub(crate) struct Chart {
    /// The element id (tests and anchors).
    pub(crate) id: &'static str,
    pub(crate) width: u32,
    /// The x of the y axis.
    pub(crate) axis_x: u32,
    pub(crate) plot_right: u32,
    pub(crate) series: Vec<Series>,
    pub(crate) columns: Vec<Column>,
    pub(crate) ticks: Vec<Tick>,
    /// The scale's top value.
    pub(crate) top: u64,
    /// What a screen reader hears: the range, each series' total and the busiest day.
    pub(crate) summary: String,
    /// Each series' total over the range, in series order.
    pub(crate) totals: Vec<u64>,
}

/// The smallest of 1, 2, 5 × 10ⁿ (n ≥ 0), or an even number ≥ 2, that is at least `n`, so the
/// scale reads well and its half is a whole number.
fn nice_max(n: u64) -> u64 {
    let mut step = 1u64;
    loop {
        for m in [2, 4, 10] {
            let candidate = step.saturating_mul(m);
            if candidate >= n || candidate == u64::MAX {
                return candidate;
            }
        }
        step = step.saturating_mul(10);
    }
}

impl Chart {
    /// A chart of `days` (oldest first; per day one count per series).
    pub(crate) fn new(id: &'static str, what: &str, series: &[Series], days: &[(NaiveDate, Vec<u64>)]) -> Chart {
        let max_day = days.iter().map(|(_, v)| v.iter().fold(0u64, |a, b| a.saturating_add(*b))).max().unwrap_or(0);
        let scale_max = nice_max(max_day);
        let scale = |n: u64| (u128::from(n) * u128::from(PLOT_HEIGHT) / u128::from(scale_max)) as u64;
        let bottom = TOP + PLOT_HEIGHT;
        let columns = days
            .iter()
            .enumerate()
            .map(|(i, (day, values))| {
                let x = AXIS + 6 + i as u32 * BAR_STEP;
                let (mut running, mut segments) = (0u64, Vec::new());
                for (s, n) in series.iter().zip(values) {
                    // Positions from the running sum, so rounding never makes the stack exceed the plot.
                    let (from, to) = (scale(running), scale(running.saturating_add(*n)));
                    running = running.saturating_add(*n);
                    if to > from {
                        segments.push(Segment { y: bottom - to, height: to - from, class: s.class });
                    }
                }
                let parts: Vec<String> = series.iter().zip(values).map(|(s, n)| format!("{n} {}", s.name)).collect();
                Column {
                    x,
                    label_x: x + BAR_WIDTH / 2,
                    label: day.format("%d").to_string(),
                    date: day.to_string(),
                    segments,
                    title: format!("{day}: {}", parts.join(", ")),
                    values: values.clone(),
                    total: running,
                }
            })
            .collect();
        let totals: Vec<u64> = (0..series.len())
            .map(|i| days.iter().map(|(_, v)| v.get(i).copied().unwrap_or(0)).fold(0u64, u64::saturating_add))
            .collect();
        let parts: Vec<String> = series.iter().zip(&totals).map(|(s, n)| format!("{n} {}", s.name)).collect();
        let range = match (days.first(), days.last()) {
            (Some((a, _)), Some((b, _))) => format!("{a} to {b}"),
            _ => String::new(),
        };
        let summary = format!("{what} per day, {range}: {}; the busiest day had {max_day}.", parts.join(", "));
        let ticks =
            [0, scale_max / 2, scale_max].into_iter().map(|value| Tick { y: bottom - scale(value), value }).collect();
        let width = AXIS + 6 + days.len() as u32 * BAR_STEP;
        Chart {
            id,
            width,
            axis_x: AXIS,
            plot_right: width,
            series: series.to_vec(),
            columns,
            ticks,
            top: scale_max,
            summary,
            totals,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO: [Series; 2] = [Series { name: "ok", class: "s-ok" }, Series { name: "failed", class: "s-failed" }];

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 3, d).expect("a date")
    }

    #[test]
    fn scales_read_well() {
        let got: Vec<u64> = [0, 1, 2, 3, 5, 7, 10, 11, 39, 40, 41, 999, 1001].into_iter().map(nice_max).collect();
        assert_eq!(got, [2, 2, 2, 4, 10, 10, 10, 20, 40, 40, 100, 1000, 2000]);
        assert_eq!(nice_max(u64::MAX), u64::MAX);
    }

    #[test]
    fn bars_stack_within_the_plot_and_sum_up() {
        let days = vec![(day(1), vec![3, 1]), (day(2), vec![0, 0]), (day(3), vec![10, 7])];
        let chart = Chart::new("c", "Logins", &TWO, &days);
        assert_eq!(chart.totals, [13, 8]);
        assert_eq!(chart.summary, "Logins per day, 2026-03-01 to 2026-03-03: 13 ok, 8 failed; the busiest day had 17.");
        let ticks: Vec<(u64, u64)> = chart.ticks.iter().map(|t| (t.y, t.value)).collect();
        assert_eq!(ticks, [(130, 0), (70, 10), (10, 20)]);
        let third = &chart.columns[2];
        assert_eq!(third.title, "2026-03-03: 10 ok, 7 failed");
        assert_eq!(third.total, 17);
        // 10/20 and 17/20 of 120: stacked from the bottom, no gap and no overlap.
        let segs: Vec<(u64, u64, &str)> = third.segments.iter().map(|s| (s.y, s.height, s.class)).collect();
        assert_eq!(segs, [(70, 60, "s-ok"), (28, 42, "s-failed")]);
        assert!(chart.columns[1].segments.is_empty());
        assert!(chart.columns.iter().all(|c| c.x + BAR_WIDTH <= chart.width));
    }

    #[test]
    fn huge_counts_do_not_overflow() {
        let days = vec![(day(1), vec![u64::MAX, u64::MAX])];
        let chart = Chart::new("c", "Logins", &TWO, &days);
        assert_eq!(chart.columns[0].total, u64::MAX);
        assert!(chart.columns[0].segments.iter().all(|s| s.y >= TOP && s.y + s.height <= TOP + PLOT_HEIGHT));
    }
}
