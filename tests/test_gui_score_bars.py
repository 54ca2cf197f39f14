"""ScoreBars: each label's bar is as long as its score, in its colour; the static background
(grid, axis, names) is drawn once and redrawn only when the size or the labels change."""
import pytest

pytest.importorskip("pytestqt")

from PySide6.QtGui import QColor, QPalette  # noqa: E402

from clipvae_studio.gui.explorer.score_bars import DIM_ALPHA, ScoreBars  # noqa: E402
from clipvae_studio.gui.palette import label_color  # noqa: E402


def bar_lengths(bars: ScoreBars) -> list[int]:
    """Pixels of each row's centre line, from the axis on, in that row's bar colour."""
    image = bars.grab().toImage()
    left, top, _, _, row, _ = bars._layout(bars.fontMetrics())
    base = bars.palette().color(QPalette.ColorRole.Base)
    lengths = []
    for i in range(len(bars.label_names)):
        colour = label_color(i)
        if i != bars.top_label:  # dim bars are blended over the background
            a = DIM_ALPHA / 255
            colour = QColor(*(round(a * c + (1 - a) * b) for c, b in
                              zip(colour.getRgb()[:3], base.getRgb()[:3])))
        y = int(top + (i + 0.5) * row)
        n = 0
        for x in range(int(left) + 2, bars.width()):
            pixel = image.pixelColor(x, y)
            if max(abs(pixel.red() - colour.red()), abs(pixel.green() - colour.green()),
                   abs(pixel.blue() - colour.blue())) <= 3:
                n += 1
        lengths.append(n)
    return lengths


def test_bars_follow_the_scores_and_the_background_is_kept(qtbot):
    bars = ScoreBars()
    qtbot.addWidget(bars)
    bars.resize(320, 220)
    bars.set_label_names(["0", "1", "2", "3"])
    bars.show()
    qtbot.waitExposed(bars)
    scores = [0.1, 0.6, 0.25, 0.05]
    bars.set_scores(scores)
    width = bars._layout(bars.fontMetrics())[3]
    lengths = bar_lengths(bars)
    for length, score in zip(lengths, scores):
        assert abs(length - score * width) <= 4, (lengths, [s * width for s in scores])
    background = bars._background_pixmap
    bars.set_scores([0.7, 0.1, 0.1, 0.1])  # a drag move: the background is reused
    lengths = bar_lengths(bars)
    assert bars._background_pixmap is background
    assert bars.top_label == 0 and abs(lengths[0] - 0.7 * width) <= 4 and abs(lengths[1] - 0.1 * width) <= 4
    bars.resize(420, 220)  # a new size: drawn again, and the bars scale with it
    lengths = bar_lengths(bars)
    assert bars._background_pixmap is not background
    wider = bars._layout(bars.fontMetrics())[3]
    assert wider > width + 50 and abs(lengths[0] - 0.7 * wider) <= 4
