//! The report's charts as inline SVG (plotters' SVG backend: text and
//! shapes only, no fonts, images or scripts to fetch). Each chart is
//! drawn from plain series, so the compliance report and the admin
//! overview page draw the same pictures from the same numbers.

use plotters::prelude::*;

/// Width and height of every chart, in SVG user units (the page scales it).
pub const SIZE: (u32, u32) = (720, 300);

/// Colours a reader can tell apart in print and in colour-blind vision
/// (Okabe-Ito).
pub const BLUE: RGBColor = RGBColor(0, 114, 178);
pub const ORANGE: RGBColor = RGBColor(230, 159, 0);
pub const VERMILION: RGBColor = RGBColor(213, 94, 0);
pub const GREEN: RGBColor = RGBColor(0, 158, 115);
pub const GREY: RGBColor = RGBColor(153, 153, 153);

/// One series of a bar chart.
pub struct Series<'a> {
    pub name: &'a str,
    pub color: RGBColor,
    pub values: Vec<f64>,
}

fn svg(
    draw: impl FnOnce(DrawingArea<SVGBackend<'_>, plotters::coord::Shift>) -> Result<(), String>,
) -> String {
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, SIZE).into_drawing_area();
        if let Err(e) = root
            .fill(&WHITE)
            .map_err(|e| e.to_string())
            .and_then(|()| draw(root.clone()))
        {
            tracing::warn!(error = %e, "chart not drawn");
        }
        let _ = root.present();
    }
    buf
}

/// Says so on a chart with nothing to draw.
fn no_data(
    root: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    empty: bool,
) -> Result<(), String> {
    if empty {
        root.draw(&Text::new(
            "no data in the period",
            (300, 150),
            ("sans-serif", 16),
        ))
        .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// An axis label for whole counts only (no "1, 1, 2" from rounding).
fn whole(v: &f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{v:.0}")
    } else {
        String::new()
    }
}

fn nice_max(max: f64) -> f64 {
    if max <= 0.0 { 1.0 } else { max * 1.1 }
}

/// Vertical bars, one per label, the series stacked; an empty chart says
/// so.
pub fn stacked_bars(title: &str, labels: &[String], series: &[Series<'_>]) -> String {
    let totals: Vec<f64> = (0..labels.len())
        .map(|i| {
            series
                .iter()
                .map(|s| s.values.get(i).copied().unwrap_or(0.0))
                .sum()
        })
        .collect();
    let max = nice_max(totals.iter().copied().fold(0.0, f64::max));
    let n = labels.len().max(1) as f64;
    let every = (labels.len() / 12).max(1);
    svg(|root| {
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(0f64..n, 0f64..max)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(labels.len().min(12) + 1)
            .x_label_formatter(&|x| {
                let i = x.floor() as usize;
                if (x - x.floor()).abs() < f64::EPSILON && i.is_multiple_of(every) {
                    labels.get(i).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .y_label_formatter(&whole)
            .light_line_style(WHITE)
            .draw()
            .map_err(|e| e.to_string())?;
        for (si, s) in series.iter().enumerate() {
            let bars = (0..labels.len()).map(|i| {
                let below: f64 = series[..si]
                    .iter()
                    .map(|s| s.values.get(i).copied().unwrap_or(0.0))
                    .sum();
                let v = s.values.get(i).copied().unwrap_or(0.0);
                Rectangle::new(
                    [(i as f64 + 0.1, below), (i as f64 + 0.9, below + v)],
                    s.color.filled(),
                )
            });
            chart
                .draw_series(bars)
                .map_err(|e| e.to_string())?
                .label(s.name)
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 10, y + 5)], s.color.filled())
                });
        }
        if series.len() > 1 {
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .position(SeriesLabelPosition::UpperRight)
                .draw()
                .map_err(|e| e.to_string())?;
        }
        no_data(&root, labels.is_empty())
    })
}

/// Horizontal bars, one per item, largest first as given.
pub fn horizontal_bars(title: &str, items: &[(String, f64)], color: RGBColor) -> String {
    let max = nice_max(items.iter().map(|(_, v)| *v).fold(0.0, f64::max));
    let n = items.len().max(1) as f64;
    let label_width = items
        .iter()
        .map(|(l, _)| l.len())
        .max()
        .unwrap_or(4)
        .clamp(4, 40) as u32
        * 7;
    svg(|root| {
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(label_width)
            .build_cartesian_2d(0f64..max, 0f64..n)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(items.len() * 2 + 1)
            .y_label_formatter(&|y| {
                let k = y - y.floor();
                if (k - 0.5).abs() < 1e-6 {
                    let i = items.len() - 1 - y.floor() as usize;
                    items.get(i).map(|(l, _)| l.clone()).unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .x_label_formatter(&whole)
            .light_line_style(WHITE)
            .draw()
            .map_err(|e| e.to_string())?;
        let m = items.len();
        chart
            .draw_series(items.iter().enumerate().map(|(i, (_, v))| {
                let row = (m - 1 - i) as f64;
                Rectangle::new([(0.0, row + 0.15), (*v, row + 0.85)], color.filled())
            }))
            .map_err(|e| e.to_string())?;
        no_data(&root, items.is_empty())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_are_self_contained_svg() {
        let bars = stacked_bars(
            "calls",
            &["2026-11-01".into(), "2026-11-02".into()],
            &[
                Series {
                    name: "allowed",
                    color: BLUE,
                    values: vec![3.0, 5.0],
                },
                Series {
                    name: "denied",
                    color: VERMILION,
                    values: vec![1.0, 0.0],
                },
            ],
        );
        let horizontal =
            horizontal_bars("denials", &[("p1".into(), 4.0), ("p2".into(), 1.0)], ORANGE);
        let empty = stacked_bars("nothing", &[], &[]);
        for svg in [&bars, &horizontal, &empty] {
            assert!(svg.starts_with("<svg"), "{svg}");
            assert!(svg.contains("</svg>"));
            for external in ["href", "<image", "<script", "url(", "@import"] {
                assert!(!svg.contains(external), "{external} in {svg}");
            }
        }
        assert!(bars.contains("2026-11-01") && bars.contains("allowed") && bars.contains("denied"));
        assert!(
            horizontal.contains("\np1\n") && horizontal.contains("\np2\n"),
            "{horizontal}"
        );
        assert!(empty.contains("no data in the period"));
        // Four bars (three non-empty) and the legend's two swatches.
        assert!(bars.matches("<rect").count() >= 6, "{bars}");
    }
}
