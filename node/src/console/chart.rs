//! Bar charts as inline SVG, drawn on the server: each bar carries its raw figure (`data-value`) and the key it
//! stands for (`data-month`, `data-kind`, …), so a test or a screen reader reads the numbers, not the pixels.

use super::page::escape;

/// One bar: its label under the axis, the data attribute naming it, and its figure.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    pub label: String,
    /// e.g. `("data-month", "2026-03")`.
    pub key: (&'static str, String),
    pub value: u64,
}

const WIDTH: u32 = 640;
const HEIGHT: u32 = 220;
const TOP: u32 = 16;
const BOTTOM: u32 = 40;
const LEFT: u32 = 8;

/// An `<svg class="chart" id="chart-{id}" role="img">` bar chart titled `title` (its `<title>` is what a screen
/// reader announces). Bars are scaled to the largest figure; an empty chart says `empty_text`.
pub fn bar_chart(id: &str, title: &str, bars: &[Bar], empty_text: &str) -> String {
    let title_id = format!("chart-{id}-title");
    let mut svg = format!(
        "<svg class=\"chart\" id=\"chart-{id}\" role=\"img\" aria-labelledby=\"{title_id}\" \
         viewBox=\"0 0 {WIDTH} {HEIGHT}\" xmlns=\"http://www.w3.org/2000/svg\">\
         <title id=\"{title_id}\">{}</title>",
        escape(title)
    );
    let max = bars.iter().map(|bar| bar.value).max().unwrap_or(0);
    if bars.is_empty() {
        svg.push_str(&format!(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" class=\"empty\">{}</text>",
            WIDTH / 2,
            HEIGHT / 2,
            escape(empty_text)
        ));
    }
    let plot_height = HEIGHT - TOP - BOTTOM;
    let slot = if bars.is_empty() { 0 } else { (WIDTH - 2 * LEFT) / bars.len() as u32 };
    let bar_width = (slot * 7 / 10).max(1);
    for (index, bar) in bars.iter().enumerate() {
        let height = scaled(bar.value, max, plot_height);
        let x = LEFT + slot * index as u32 + (slot - bar_width) / 2;
        let y = TOP + plot_height - height;
        let (attribute, key) = &bar.key;
        svg.push_str(&format!(
            "<g><rect x=\"{x}\" y=\"{y}\" width=\"{bar_width}\" height=\"{height}\" {attribute}=\"{}\" \
             data-value=\"{}\"><title>{}: {}</title></rect>\
             <text x=\"{}\" y=\"{}\" text-anchor=\"middle\" class=\"value\">{}</text>\
             <text x=\"{}\" y=\"{}\" text-anchor=\"middle\" class=\"label\">{}</text></g>",
            escape(key),
            bar.value,
            escape(&bar.label),
            bar.value,
            x + bar_width / 2,
            y.saturating_sub(3).max(10),
            bar.value,
            x + bar_width / 2,
            HEIGHT - BOTTOM + 16,
            escape(&bar.label),
        ));
    }
    svg.push_str(&format!(
        "<line x1=\"{LEFT}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" class=\"axis\"/></svg>",
        TOP + plot_height,
        WIDTH - LEFT,
        TOP + plot_height
    ));
    svg
}

/// `value`'s bar height in pixels out of `full` for the largest figure `max` (a non-zero figure shows at least one).
fn scaled(value: u64, max: u64, full: u32) -> u32 {
    if max == 0 || value == 0 {
        return 0;
    }
    let height = (u128::from(value) * u128::from(full) / u128::from(max)) as u32;
    height.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bar(month: &str, value: u64) -> Bar {
        Bar { label: month.into(), key: ("data-month", month.into()), value }
    }

    #[test]
    fn every_bar_carries_its_key_and_raw_value() {
        let svg = bar_chart("minutes-by-month", "每月", &[bar("2026-01", 90), bar("2026-02", 0)], "无");
        assert!(svg.starts_with("<svg class=\"chart\" id=\"chart-minutes-by-month\" role=\"img\""));
        assert!(svg.contains("aria-labelledby=\"chart-minutes-by-month-title\""));
        assert!(svg.contains("<title id=\"chart-minutes-by-month-title\">每月</title>"));
        assert!(svg.contains("data-month=\"2026-01\" data-value=\"90\""));
        assert!(svg.contains("data-month=\"2026-02\" data-value=\"0\""));
        assert_eq!(svg.matches("<rect").count(), 2);
        assert!(svg.ends_with("</svg>"));
    }

    #[test]
    fn bars_scale_to_the_largest_and_small_ones_stay_visible() {
        let full = HEIGHT - TOP - BOTTOM;
        assert_eq!(scaled(100, 100, full), full);
        assert_eq!(scaled(50, 100, full), full / 2);
        assert_eq!(scaled(1, 1_000_000, full), 1);
        assert_eq!(scaled(0, 100, full), 0);
        assert_eq!(scaled(0, 0, full), 0);
        assert_eq!(scaled(u64::MAX, u64::MAX, full), full);
    }

    #[test]
    fn text_is_escaped_and_an_empty_chart_says_so() {
        let svg = bar_chart("x", "a<b", &[], "none & nothing");
        assert!(svg.contains("a&lt;b"));
        assert!(svg.contains("none &amp; nothing"));
        assert_eq!(svg.matches("<rect").count(), 0);
        let svg = bar_chart("x", "t", &[Bar { label: "\"q\"".into(), key: ("data-kind", "k\"".into()), value: 3 }], "");
        assert!(svg.contains("data-kind=\"k&quot;\""), "{svg}");
    }
}
