"""The window fits the preset to the data it opens, as `train` does on the command line
(core/validation.fit_to_dataset): with more than MAX_DEFAULT_HEADS labels the routed decoder heads
are off, with few labels they are on again, and a value the person set by hand is kept."""
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QStyle, QStyleOptionButton

pytest.importorskip("pytestqt")

from clipvae_studio.core.synthetic import coloured_digits  # noqa: E402
from clipvae_studio.core.validation import MAX_DEFAULT_HEADS  # noqa: E402
from qt_helpers import MessageRecorder, open_window  # noqa: E402

WAIT_MS = 60_000
MANY = MAX_DEFAULT_HEADS + 10


def small_set(num_labels):
    return coloured_digits(8, 1, num_labels, train_per_label=3, test_per_label=1)


def heads_box(window):
    return window.settings_panel.editors["decoder_heads"]


def test_heads_follow_the_label_count_unless_set_by_hand(qtbot, mnist5k):
    window = open_window(qtbot, mnist5k, batch_size=32)
    window.show_message = MessageRecorder(answer=True)  # "a fresh model?" answered yes
    qtbot.waitUntil(lambda: window.trainer is not None, timeout=WAIT_MS)
    assert window.trainer.config.decoder_heads and heads_box(window).isChecked()

    window.set_dataset(small_set(MANY))
    assert not window.trainer.config.decoder_heads and not window.trainer.model.decoder_heads
    assert not heads_box(window).isChecked()  # the Settings dock shows what the model has
    assert "decoder_heads turned off" in window.statusBar().currentMessage()
    assert window.dataset_combo.currentText() == window.studio.dataset.name  # the toolbar names it too

    window.set_dataset(small_set(10))  # few labels again: the preset's heads come back
    assert window.trainer.config.decoder_heads and heads_box(window).isChecked()

    window.set_dataset(small_set(MANY))
    box = heads_box(window)
    indicator = box.style().subElementRect(QStyle.SubElement.SE_CheckBoxIndicator, QStyleOptionButton(), box)
    qtbot.mouseClick(box, Qt.MouseButton.LeftButton, pos=indicator.center())  # the person wants them anyway
    assert window.trainer.config.decoder_heads and window.trainer.model.decoder_heads
    window.set_dataset(small_set(MANY + 1))
    assert window.trainer.config.decoder_heads and heads_box(window).isChecked()
    window.close()
