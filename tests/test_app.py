"""`flallm app` in a real browser: headless Chromium (Debian's `chromium` + `chromium-driver`) driven by selenium.

The page is started on the tiny model overfitted on four clips; a clip is uploaded and translated, and the page must
show what the pipeline says for it; then a corrupt file gives a message on the page, and the page still translates
the next upload. Skipped (with the reason) where gradio, selenium or the browser is not installed: `.ci/run` installs
all three.
"""

import shutil
import socket

import numpy as np
import pytest
from _slt_fixtures import TEXTS, VIDEOS, trained_tiny, write_video

gradio = pytest.importorskip("gradio")
webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from train import app  # noqa: E402
from train.translate import load_translator  # noqa: E402

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and DRIVER),
    reason="chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)",
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def page_url(tmp_path_factory):
    model_dir = tmp_path_factory.mktemp("model")
    model, processor = trained_tiny()
    model.save_pretrained(model_dir)
    processor.save_pretrained(model_dir)
    port = _free_port()
    page = app.build_app(str(model_dir))
    page.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    yield f"http://127.0.0.1:{port}", str(model_dir)
    page.close()


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1500"):
        options.add_argument(argument)
    options.binary_location = CHROMIUM
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=DRIVER), options=options)
    yield driver
    driver.quit()


def _translate(browser, path) -> tuple[str, str]:
    """Upload `path`, press Translate, wait for the status line; returns (translation, status)."""
    WebDriverWait(browser, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#translate"))
    before = _status(browser)
    clear = browser.find_elements(By.CSS_SELECTOR, "#video button[aria-label='Clear']")
    if clear:
        clear[0].click()
    WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#video input[type=file]"))
    browser.find_element(By.CSS_SELECTOR, "#video input[type=file]").send_keys(path)
    name = path.rsplit("/", 1)[-1]  # the upload is done when the player shows this file
    WebDriverWait(browser, 30).until(
        lambda d: any(
            name in (video.get_attribute("src") or "") for video in d.find_elements(By.CSS_SELECTOR, "#video video")
        )
    )
    browser.find_element(By.CSS_SELECTOR, "#translate").click()
    # Wait for a final status line: while the event runs, gradio may show its own progress text there.
    WebDriverWait(browser, 60).until(
        lambda d: _status(d) != before and _status(d).startswith(("Translated", "Could not", "Upload"))
    )
    if _status(browser).startswith("Translated"):  # the outputs of one event reach the DOM one after the other
        WebDriverWait(browser, 10).until(lambda d: _translation(d))
    return _translation(browser), _status(browser)


def _translation(browser) -> str:
    return browser.find_element(By.CSS_SELECTOR, "#translation textarea").get_attribute("value")


def _status(browser) -> str:
    found = browser.find_elements(By.CSS_SELECTOR, "#status")
    return found[0].text.strip() if found else ""


def test_the_page_translates_an_upload_like_the_pipeline_and_reports_bad_files(page_url, browser, tmp_path):
    url, model_dir = page_url
    clip = str(write_video(tmp_path / "clip.mp4", VIDEOS[0]))
    expected = load_translator(model_dir)(clip)["translation_text"]
    assert expected == TEXTS[0]
    browser.get(url)
    translation, status = _translate(browser, clip)
    assert translation == expected and "Translated in" in status and "kept" in status
    assert browser.find_element(By.CSS_SELECTOR, "#frames img").get_attribute("src")  # the strip of kept frames

    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(np.random.default_rng(0).bytes(3000))
    translation, status = _translate(browser, str(corrupt))
    assert translation == "" and "Could not translate corrupt.mp4" in status and "Traceback" not in status

    other = str(write_video(tmp_path / "other.mp4", VIDEOS[2]))  # the page still works after the error
    translation, status = _translate(browser, other)
    assert translation == TEXTS[2], status


def test_the_page_refuses_a_clip_longer_than_its_limit_and_names_unreadable_files(page_url, tmp_path):
    """The length check reads the container through the one video reader (no decoding)."""
    _, model_dir = page_url
    translator = app.Translator(model_dir, max_seconds=0.2)
    clip = str(write_video(tmp_path / "long.mp4", VIDEOS[0]))  # 12 frames at 25 fps: 0.48 s
    translation, strip, status, _ = translator(clip, num_beams=1, max_new_tokens=8)
    assert translation == "" and strip is None and "long.mp4" in status and "minutes long" in status
    (tmp_path / "noise.mp4").write_bytes(np.random.default_rng(1).bytes(2000))
    translation, _, status, _ = translator(str(tmp_path / "noise.mp4"), num_beams=1, max_new_tokens=8)
    assert translation == "" and "noise.mp4" in status and "could not open the video" in status
