//! The explorer page in a real browser: headless Chromium loads the page served by
//! the `explore` example, a stroke is drawn on the canvas with synthesized mouse
//! events (and one with a finger), and the test checks that a prediction appears,
//! that every layer's maps and the saliency are drawn (for another class when one
//! is clicked), and that the numbers on the page are those of
//! `inspect --predict` on the same drawing and of the library's `predict` on the
//! 28×28 input the page reports. A second case explores a small RGB model with
//! named classes on an image folder of 24×16 images: the names are on the page, a
//! test image and a drawing in a coloured pen are drawn in colour and in the
//! model's shape, and the drawing's numbers are the library's for the same pixels. Screenshots go to `target/explore-screenshots/`.
//!
//! Chromium is driven through the DevTools protocol over a pipe
//! (`--remote-debugging-pipe`: JSON messages ended by a NUL byte on file
//! descriptors 3 and 4), which needs no WebDriver binary, no port and no WebSocket
//! crate. Without a `chromium` on the PATH the test says so loudly and passes;
//! `.ci/run` installs Debian's package first.
//!
//! It runs the example binaries that `cargo test` builds beside the tests; after
//! changing them, run plain `cargo test` (not `--test suite` alone).

use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::cli_support;
use crate::temp_dir;

use cli_support::{example_path, small_net_of};
use ferrocnn::data::{fit_image, frame_like_mnist, Fit, Image, Normalize};
use ferrocnn::io::{save_model_with_data, DataSpec};
use ferrocnn::ops::softmax_rows;
use ferrocnn::train::predict;
use ferrocnn::viz::{GrayImage, RgbImage};
use serde_json::{json, Value};

/// How long any one wait may take before the test fails.
const PATIENCE: Duration = Duration::from_secs(30);

fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| ["chromium", "chromium-browser"].map(|name| dir.join(name)))
        .find(|p| p.is_file())
}

/// A child process ended when the test ends, pass or fail.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts an example that serves the page on a free port and prints its address;
/// returns it and the address. Its output is passed on to the test's, prefixed.
fn start_server(name: &str, args: &[&str]) -> (Killed, String) {
    let mut child = Command::new(example_path(name))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("{name} starts: {e}"));
    let lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let (tx, rx) = mpsc::channel();
    let prefix = format!("[{name}]");
    // Keep reading (one line per analysis), so the server never blocks on a full pipe.
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            if let Some(url) = line.split_whitespace().find(|w| w.starts_with("http://")) {
                let _ = tx.send(url.to_string());
            }
            eprintln!("{prefix} {line}");
        }
    });
    let url = rx
        .recv_timeout(PATIENCE)
        .unwrap_or_else(|e| panic!("{name} printed no address: {e}"));
    (Killed(child), url)
}

/// Chromium on `url`, its window 1400×1000.
fn open_page(chromium: &Path, profile: &Path, url: &str) -> Browser {
    let mut browser = Browser::launch(chromium, profile);
    let target = browser.call("Target.createTarget", json!({"url": "about:blank"}));
    let attached = browser.call(
        "Target.attachToTarget",
        json!({"targetId": target["targetId"], "flatten": true}),
    );
    browser.session = Some(attached["sessionId"].as_str().expect("session").to_string());
    browser.call(
        "Emulation.setDeviceMetricsOverride",
        json!({"width": 1400, "height": 1000, "deviceScaleFactor": 1, "mobile": false}),
    );
    browser.call("Runtime.enable", json!({}));
    browser.call("Page.enable", json!({}));
    browser.call("Page.navigate", json!({"url": url}));
    browser
}

/// Chromium, or a loud note that the page goes untested here.
fn chromium_or_skip() -> Option<PathBuf> {
    let found = chromium();
    if found.is_none() {
        eprintln!(
            "\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
             !!! SKIPPED: no chromium on the PATH, so the explorer page was NOT tested\n\
             !!! in a browser. Install Debian's package: apt-get install chromium\n\
             !!! (.ci/run does this itself).\n\
             !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n"
        );
    }
    found
}

/// The folder for screenshots, `target/explore-screenshots`.
fn screenshots() -> PathBuf {
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("../explore-screenshots");
    std::fs::create_dir_all(&shots).expect("screenshot folder");
    shots
}

/// The tests take turns: two browsers and a training run at once on 2 cores would
/// slow each other, and the page's timings with them.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Pixels of more than `n` colours in the canvas `id`: something was drawn.
fn drawn(browser: &mut Browser, id: &str) -> u64 {
    browser
        .eval(&format!(
            "(c => {{ const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; \
               const s = new Set(); for (let i = 0; i < d.length; i += 4) s.add(d[i] * 65536 + d[i + 1] * 256 + d[i + 2]); \
               return s.size; }})(document.getElementById('{id}'))"
        ))
        .as_u64()
        .unwrap()
}

/// A DevTools protocol connection to one page.
struct Browser {
    process: Killed,
    to_browser: std::io::PipeWriter,
    from_browser: mpsc::Receiver<Value>,
    next_id: u64,
    session: Option<String>,
    /// Exceptions and console errors the page reported.
    page_errors: Vec<String>,
}

impl Browser {
    fn launch(chromium: &Path, profile: &Path) -> Browser {
        let (ours_read, theirs_write) = std::io::pipe().expect("pipe");
        let (theirs_read, ours_write) = std::io::pipe().expect("pipe");
        let (read_fd, write_fd) = (theirs_read.as_raw_fd(), theirs_write.as_raw_fd());
        let mut command = Command::new(chromium);
        command
            .args([
                "--headless",
                "--remote-debugging-pipe",
                "--no-sandbox", // runs as root in CI
                "--disable-gpu",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-extensions",
                "--hide-scrollbars",
                "--mute-audio",
                "--disable-dev-shm-usage", // containers often have a tiny /dev/shm
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: between fork and exec only fcntl and dup2, which are
        // async-signal-safe; the descriptors are first copied above 10 so that
        // placing one at 3 cannot overwrite the other.
        unsafe {
            command.pre_exec(move || {
                let read = libc::fcntl(read_fd, libc::F_DUPFD_CLOEXEC, 10);
                let write = libc::fcntl(write_fd, libc::F_DUPFD_CLOEXEC, 10);
                if read < 0 || write < 0 || libc::dup2(read, 3) < 0 || libc::dup2(write, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let process = Killed(command.spawn().expect("chromium starts"));
        drop((theirs_read, theirs_write));
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(ours_read);
            let mut message = Vec::new();
            while reader.read_until(0, &mut message).is_ok_and(|n| n > 0) {
                message.pop();
                if let Ok(value) = serde_json::from_slice::<Value>(&message)
                    && tx.send(value).is_err()
                {
                    break;
                }
                message.clear();
            }
        });
        Browser {
            process,
            to_browser: ours_write,
            from_browser: rx,
            next_id: 0,
            session: None,
            page_errors: Vec::new(),
        }
    }

    /// Sends a command (to the page once attached) and waits for its result.
    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({"id": id, "method": method, "params": params});
        if let Some(session) = &self.session {
            message["sessionId"] = json!(session);
        }
        let mut bytes = message.to_string().into_bytes();
        bytes.push(0);
        self.to_browser
            .write_all(&bytes)
            .expect("chromium reads commands");
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let reply = self
                .from_browser
                .recv_timeout(left)
                .unwrap_or_else(|e| panic!("no answer to {method} from chromium: {e}"));
            if reply["id"] == json!(id) {
                if let Some(error) = reply.get("error") {
                    panic!("{method}: {error}");
                }
                return reply["result"].clone();
            }
            self.note_event(&reply);
        }
    }

    fn note_event(&mut self, event: &Value) {
        match event["method"].as_str() {
            Some("Runtime.exceptionThrown") => self
                .page_errors
                .push(event["params"]["exceptionDetails"].to_string()),
            Some("Runtime.consoleAPICalled") if event["params"]["type"] == "error" => {
                self.page_errors.push(event["params"]["args"].to_string())
            }
            _ => {}
        }
    }

    /// Evaluates a JavaScript expression in the page and returns its value.
    fn eval(&mut self, expression: &str) -> Value {
        let result = self.call(
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
        );
        if let Some(exception) = result.get("exceptionDetails") {
            panic!("{expression}: {exception}");
        }
        result["result"]["value"].clone()
    }

    /// Waits until `expression` is true in the page.
    fn wait_for(&mut self, expression: &str, what: &str) {
        let deadline = Instant::now() + PATIENCE;
        while self.eval(expression) != json!(true) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A screenshot of the whole page (beyond the window), as PNG bytes.
    fn screenshot(&mut self, path: &Path) {
        let metrics = self.call("Page.getLayoutMetrics", json!({}));
        let size = &metrics["cssContentSize"];
        let shot = self.call(
            "Page.captureScreenshot",
            json!({
                "format": "png",
                "captureBeyondViewport": true,
                "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1},
            }),
        );
        let png = base64_decode(shot["data"].as_str().expect("screenshot data"));
        std::fs::write(path, png).expect("screenshot written");
    }

    /// A screenshot of the part of the page an element covers, at twice its size.
    fn screenshot_of(&mut self, selector: &str, path: &Path) {
        let rect = self.eval(&format!(
            "JSON.parse(JSON.stringify(document.querySelector('{selector}').getBoundingClientRect()))"
        ));
        let shot = self.call(
            "Page.captureScreenshot",
            json!({
                "format": "png",
                "captureBeyondViewport": true,
                "clip": {"x": rect["x"], "y": rect["y"], "width": rect["width"], "height": rect["height"], "scale": 2},
            }),
        );
        let png = base64_decode(shot["data"].as_str().expect("screenshot data"));
        std::fs::write(path, png).expect("screenshot written");
    }

    /// Presses, moves through `points` (page coordinates) and releases, as a mouse
    /// (`touch == false`) or a finger does.
    fn stroke(&mut self, points: &[(f64, f64)], touch: bool) {
        let (first, last) = (points[0], points[points.len() - 1]);
        if touch {
            let at = |(x, y): (f64, f64)| json!([{"x": x, "y": y, "id": 1}]);
            self.call(
                "Input.dispatchTouchEvent",
                json!({"type": "touchStart", "touchPoints": at(first)}),
            );
            for &p in &points[1..] {
                self.call(
                    "Input.dispatchTouchEvent",
                    json!({"type": "touchMove", "touchPoints": at(p)}),
                );
            }
            self.call(
                "Input.dispatchTouchEvent",
                json!({"type": "touchEnd", "touchPoints": []}),
            );
        } else {
            let mouse = |kind: &str, (x, y): (f64, f64), buttons: u32| json!({"type": kind, "x": x, "y": y, "button": "left", "buttons": buttons, "clickCount": 1});
            self.call("Input.dispatchMouseEvent", mouse("mousePressed", first, 1));
            for &p in &points[1..] {
                self.call("Input.dispatchMouseEvent", mouse("mouseMoved", p, 1));
            }
            self.call("Input.dispatchMouseEvent", mouse("mouseReleased", last, 0));
        }
    }
}

impl Drop for Browser {
    /// `Browser.close` lets Chromium end its renderer and helper processes itself,
    /// which killing the main process alone would leave behind for a while.
    fn drop(&mut self) {
        let mut close = json!({"id": 0, "method": "Browser.close"})
            .to_string()
            .into_bytes();
        close.push(0);
        if self.to_browser.write_all(&close).is_ok() {
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline && matches!(self.process.0.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// Points along straight segments through `corners` (fractions of the pad), every
/// few pixels, in page coordinates.
fn path_on_pad(pad: &Value, corners: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let (left, top) = (pad["left"].as_f64().unwrap(), pad["top"].as_f64().unwrap());
    let (width, height) = (pad["width"].as_f64().unwrap(), pad["height"].as_f64().unwrap());
    let at = |(u, v): (f64, f64)| (left + u * width, top + v * height);
    let mut points = vec![at(corners[0])];
    for pair in corners.windows(2) {
        let (a, b) = (at(pair[0]), at(pair[1]));
        let steps = ((b.0 - a.0).hypot(b.1 - a.1) / 6.0).ceil().max(1.0) as usize;
        points.extend((1..=steps).map(|i| {
            let t = i as f64 / steps as f64;
            (a.0 + t * (b.0 - a.0), a.1 + t * (b.1 - a.1))
        }));
    }
    points
}

fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let digits: Vec<u8> = text.bytes().filter(|&c| c != b'=').map(value).collect();
    digits
        .chunks(4)
        .flat_map(|chunk| {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |n, (i, &d)| n | u32::from(d) << (18 - 6 * i));
            let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
            bytes.into_iter().take(chunk.len() - 1)
        })
        .collect()
}

/// The probabilities `inspect --predict` prints, by class.
fn inspect_predict(png: &Path, out: &Path) -> Vec<(usize, String)> {
    let output = Command::new(example_path("inspect"))
        .arg("models/mnist.bin")
        .arg("--predict")
        .arg(png)
        .arg("--out")
        .arg(out)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("inspect runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "inspect failed: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let table = stdout
        .split("class  probability")
        .nth(1)
        .unwrap_or_else(|| panic!("no probability table in {stdout}"));
    let mut rows: Vec<(usize, String)> = table
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            Some((words.next()?.parse().ok()?, words.next()?.to_string()))
        })
        .collect();
    rows.sort();
    rows
}

/// What the page shows now: `(prediction, [(4-decimal text, full value)] by class)`.
fn page_numbers(browser: &mut Browser) -> (String, Vec<(String, f64)>) {
    let shown = browser.eval(
        "({prediction: document.getElementById('prediction').textContent, \
           rows: [...document.querySelectorAll('#probabilities tbody tr')] \
             .map(r => [r.cells[1].textContent, Number(r.dataset.p)])})",
    );
    let rows = shown["rows"]
        .as_array()
        .expect("probability rows")
        .iter()
        .map(|r| (r[0].as_str().unwrap().to_string(), r[1].as_f64().unwrap()))
        .collect();
    (shown["prediction"].as_str().unwrap().to_string(), rows)
}

/// Waits until the page has answered every change made so far.
fn wait_settled(browser: &mut Browser, updates_before: u64) {
    browser.wait_for(
        &format!(
            "explorer.updates > {updates_before} && !explorer.inFlight && explorer.pendingSince === null"
        ),
        "the page to update",
    );
}

#[test]
fn the_explorer_page_predicts_a_drawn_digit_as_inspect_does() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let Some(chromium) = chromium_or_skip() else {
        return;
    };
    let started = Instant::now();
    let shots = screenshots();
    let work = temp_dir::tempdir().expect("temp dir");

    let (_server, url) = start_server("explore", &["models/mnist.bin", "--port", "0"]);
    let mut browser = open_page(&chromium, &work.path().join("profile"), &url);
    let browser_ready = started.elapsed();

    // The page opens on test image 0 (a 7).
    browser.wait_for(
        "typeof explorer === 'object' && explorer.updates >= 1 && !explorer.inFlight",
        "the first prediction",
    );
    let (first, _) = page_numbers(&mut browser);
    assert_eq!(first, "7", "test image 0 is a 7");
    browser.screenshot(&shots.join("1-test-image.png"));

    // Draw a 7 with the mouse: a bar across the top, then down to the left.
    browser.eval("document.getElementById('clear').click(); true");
    let pad =
        browser.eval("JSON.parse(JSON.stringify(document.getElementById('pad').getBoundingClientRect()))");
    let before = browser.eval("explorer.updates").as_u64().unwrap();
    let seven = path_on_pad(&pad, &[(0.25, 0.22), (0.72, 0.22), (0.62, 0.45), (0.45, 0.82)]);
    browser.stroke(&seven, false);
    wait_settled(&mut browser, before);
    let (prediction, shown) = page_numbers(&mut browser);
    assert_eq!(prediction, "7", "a drawn 7; the page shows {shown:?}");
    assert_eq!(shown.len(), 10);

    // Every layer's maps are drawn: one canvas per layer, with more than one colour.
    let layers = browser.eval(
        "[...document.querySelectorAll('#layer-list figure')].map(f => { \
           const c = f.querySelector('canvas'); \
           const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; \
           const colours = new Set(); \
           for (let i = 0; i < d.length; i += 4) colours.add(d[i] * 65536 + d[i + 1] * 256 + d[i + 2]); \
           return [f.dataset.name, c.width, c.height, colours.size, c.getBoundingClientRect().width]; })",
    );
    let layers = layers.as_array().expect("layers");
    let names: Vec<&str> = layers.iter().map(|l| l[0].as_str().unwrap()).collect();
    for name in [
        "conv1", "bn1", "relu1", "pool1", "conv2", "relu2", "pool2", "fc1", "fc2",
    ] {
        assert!(names.contains(&name), "layer {name} is missing from {names:?}");
    }
    for layer in layers {
        assert!(
            layer[3].as_u64().unwrap() > 2,
            "layer {} drew no picture: {layer}",
            layer[0]
        );
        assert!(
            layer[4].as_f64().unwrap() >= layer[1].as_f64().unwrap(),
            "layer {} is not enlarged",
            layer[0]
        );
    }
    // The saliency maps are drawn, for the prediction; a click on another class
    // explains that class instead.
    for id in ["saliency", "times-input"] {
        let n = drawn(&mut browser, id);
        assert!(n > 10, "the {id} map has {n} colours: not drawn");
    }
    assert_eq!(browser.eval("explorer.lastResult.saliency.class"), json!(7));
    browser.screenshot(&shots.join("2-drawn-seven.png"));
    let before = browser.eval("explorer.updates").as_u64().unwrap();
    browser.eval("document.querySelectorAll('#probabilities tbody tr')[1].click(); true");
    wait_settled(&mut browser, before);
    assert_eq!(browser.eval("explorer.lastResult.saliency.class"), json!(1));
    assert_eq!(
        browser.eval("document.querySelector('#probabilities tr.explained td.class').textContent"),
        json!("1")
    );
    browser.screenshot_of(".top", &shots.join("2b-saliency-of-class-1.png"));
    browser.eval("document.querySelectorAll('#probabilities tbody tr')[1].click(); true");

    // The same numbers as `inspect --predict` on the same drawing…
    let drawing = browser.eval(
        "({width: explorer.lastDrawing.width, height: explorer.lastDrawing.height, \
           pixels: Array.from(explorer.lastDrawing.pixels), framed: explorer.lastResult.input.pixels})",
    );
    let (w, h) = (
        drawing["width"].as_u64().unwrap() as usize,
        drawing["height"].as_u64().unwrap() as usize,
    );
    let pixels: Vec<u8> = drawing["pixels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_u64().unwrap() as u8)
        .collect();
    let png = work.path().join("drawing.png");
    GrayImage {
        width: w,
        height: h,
        pixels: pixels.clone(),
    }
    .save_png(&png)
    .expect("drawing saved");
    std::fs::copy(&png, shots.join("drawing-as-sent.png")).expect("copy");
    let inspect_started = Instant::now();
    let printed = inspect_predict(&png, &work.path().join("inspect"));
    let inspect_time = inspect_started.elapsed();
    assert_eq!(printed.len(), 10, "{printed:?}");
    for ((class, text), (page_text, _)) in printed.iter().zip(&shown) {
        assert_eq!(
            text, page_text,
            "class {class}: inspect --predict says {text}, the page {page_text}"
        );
    }

    // …and as the library's predict on the 28×28 input the page reports back, which
    // is the drawing framed as MNIST frames its digits.
    let framed = base64_decode(drawing["framed"].as_str().unwrap());
    assert_eq!(framed, frame_like_mnist(&pixels, (h, w), (28, 28)));
    let enlarged = GrayImage {
        width: 28 * 8,
        height: 28 * 8,
        pixels: (0..28 * 8 * 28 * 8)
            .map(|i| framed[(i / (28 * 8)) / 8 * 28 + (i % (28 * 8)) / 8])
            .collect(),
    };
    enlarged
        .save_png(shots.join("model-input-8x.png"))
        .expect("model input saved");
    let mut model =
        ferrocnn::io::load_model(Path::new(env!("CARGO_MANIFEST_DIR")).join("models/mnist.bin")).unwrap();
    let x = ndarray::Array4::from_shape_fn((1, 1, 28, 28), |(_, _, y, x)| {
        Normalize::MNIST.apply(0, f32::from(framed[y * 28 + x]))
    });
    let probabilities = softmax_rows(&predict(model.as_mut(), x.view().into_dyn()));
    for (k, (_, on_page)) in shown.iter().enumerate() {
        let p = f64::from(probabilities[[0, k]]);
        assert!(
            (p - on_page).abs() <= 1e-6,
            "class {k}: predict gives {p}, the page {on_page}"
        );
    }

    // A finger draws too: a "1" down the middle.
    browser.eval("document.getElementById('clear').click(); true");
    let before = browser.eval("explorer.updates").as_u64().unwrap();
    let one = path_on_pad(&pad, &[(0.52, 0.18), (0.48, 0.85)]);
    browser.stroke(&one, true);
    wait_settled(&mut browser, before);
    let (prediction, shown) = page_numbers(&mut browser);
    assert_eq!(
        prediction, "1",
        "a 1 drawn with a finger; the page shows {shown:?}"
    );
    browser.screenshot(&shots.join("3-finger-one.png"));

    // The next test image, by its button.
    let before = browser.eval("explorer.updates").as_u64().unwrap();
    browser.eval("document.getElementById('next').click(); true");
    wait_settled(&mut browser, before);
    let source = browser.eval("document.getElementById('input-source').textContent");
    assert_eq!(source, json!("test image 1, labelled 2"));

    // The page's own timing, from a change to the updated page.
    let timing = browser.eval("({...document.getElementById('timing').dataset})");
    let f = |key: &str| timing[key].as_str().unwrap_or("?").to_string();
    eprintln!(
        "explorer page: change → updated page median {} ms over {} updates; the last {} ms: reading the pad {}, \
         request to answer {} (server {}), JSON {}, drawing {}; browser ready in {:.1} s, inspect --predict {:.1} s, \
         whole test {:.1} s",
        f("median"),
        browser.eval("explorer.timings.length"),
        f("total"),
        f("read"),
        f("answer"),
        f("server"),
        f("body"),
        f("draw"),
        browser_ready.as_secs_f64(),
        inspect_time.as_secs_f64(),
        started.elapsed().as_secs_f64(),
    );
    assert!(
        browser.page_errors.is_empty(),
        "the page reported errors: {:?}",
        browser.page_errors
    );
}

#[test]
fn mnist_explore_shows_the_run_as_it_trains() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let Some(chromium) = chromium_or_skip() else {
        return;
    };
    let work = temp_dir::tempdir().expect("temp dir");
    let save = work.path().join("model.bin");
    // 16 steps an epoch, 2 epochs: a few seconds.
    let args = [
        "--explore",
        "0",
        "--limit-train",
        "1024",
        "--batch-size",
        "64",
        "--epochs",
        "2",
        "--save",
    ];
    let mut args: Vec<&str> = args.to_vec();
    args.push(save.to_str().expect("a UTF-8 temp path"));
    let (_training, url) = start_server("mnist", &args);
    let mut browser = open_page(&chromium, &work.path().join("profile"), &url);

    browser.wait_for(
        "typeof explorer === 'object' && explorer.live.done && explorer.live.epochs.length === 2 \
         && explorer.updates >= 1 && !explorer.inFlight",
        "the run to finish on the page",
    );
    assert_eq!(
        browser.eval("document.getElementById('training').hidden"),
        json!(false)
    );
    assert_eq!(
        browser.eval("explorer.live.steps.length"),
        json!(32),
        "every step is on the page"
    );
    let accuracy = browser
        .eval("explorer.live.epochs[1].test_accuracy")
        .as_f64()
        .unwrap();
    assert!(accuracy > 0.5, "test accuracy after two short epochs: {accuracy}");
    let status = browser.eval("document.getElementById('train-status').textContent");
    assert!(
        status.as_str().unwrap().starts_with("Finished: 32 steps"),
        "{status}"
    );
    for id in ["loss-chart", "accuracy-chart", "live-filters"] {
        let n = drawn(&mut browser, id);
        assert!(n > 3, "{id} has {n} colours: not drawn");
    }
    // The filters shown are the trained model's, at its last step.
    assert_eq!(browser.eval("explorer.live.filtersStep"), json!(32));
    browser.screenshot_of(".top", &screenshots().join("4-training.png"));
    assert!(
        browser.page_errors.is_empty(),
        "the page reported errors: {:?}",
        browser.page_errors
    );
}

/// The colour case's images are wider than tall, so the page must keep their
/// shape: on the pad, in what the model sees, in a drawing fitted to the model.
const HEIGHT: usize = 16;
const WIDTH: usize = 24;

/// Image `i` of a class: a 6×6 square of its colour on gray, placed by `i`.
fn colour_image(colour: [u8; 3], i: usize) -> RgbImage {
    let mut image = RgbImage::new(WIDTH, HEIGHT, [120, 120, 120]);
    for y in 5..11 {
        for x in 2 + 3 * i..8 + 3 * i {
            image.put(x as i64, y as i64, colour);
        }
    }
    image
}

/// The canvas `id`'s pixels as RGB bytes, row by row.
fn canvas_rgb(browser: &mut Browser, id: &str) -> (usize, usize, Vec<u8>) {
    let value = browser.eval(&format!(
        "(c => ({{width: c.width, height: c.height, \
           rgb: Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data).filter((_, i) => i % 4 !== 3)}}))\
         (document.getElementById('{id}'))"
    ));
    let rgb = value["rgb"]
        .as_array()
        .expect("canvas pixels")
        .iter()
        .map(|v| v.as_u64().unwrap() as u8)
        .collect();
    let size = |key: &str| value[key].as_u64().unwrap() as usize;
    (size("width"), size("height"), rgb)
}

#[test]
fn the_explorer_page_shows_a_colour_model_by_class_name() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let Some(chromium) = chromium_or_skip() else {
        return;
    };
    let started = Instant::now();
    let shots = screenshots();
    let work = temp_dir::tempdir().expect("temp dir");

    // An image folder of three colours (classes sorted by name, as ImageFolder
    // sorts them), and a seeded RGB net saved with their names and per-channel
    // statistics unlike any other channel's.
    let classes = [
        ("blue", [30, 60, 220]),
        ("green", [40, 200, 60]),
        ("red", [220, 40, 30]),
    ];
    let data = work.path().join("colours");
    for (split, n) in [("train", 1), ("test", 2)] {
        for (class, colour) in classes {
            let dir = data.join(split).join(class);
            std::fs::create_dir_all(&dir).expect("class folder");
            for i in 0..n {
                colour_image(colour, i)
                    .save_png(dir.join(format!("{i:02}.png")))
                    .expect("image saved");
            }
        }
    }
    let spec = DataSpec {
        input: (3, HEIGHT, WIDTH),
        classes: classes.iter().map(|(name, _)| name.to_string()).collect(),
        normalize: Normalize::new(vec![0.45, 0.5, 0.55], vec![0.2, 0.25, 0.3]).unwrap(),
    };
    let model_path = work.path().join("colours.bin");
    save_model_with_data(&small_net_of(3, (HEIGHT, WIDTH), 3), &spec, &model_path).expect("model saved");

    let (_server, url) = start_server(
        "explore",
        &[
            model_path.to_str().expect("a UTF-8 temp path"),
            "--port",
            "0",
            "--data",
            data.to_str().expect("a UTF-8 temp path"),
        ],
    );
    let mut browser = open_page(&chromium, &work.path().join("profile"), &url);

    // The page opens on test image 0, blue/00.png, and names every class.
    browser.wait_for(
        "typeof explorer === 'object' && explorer.updates >= 1 && !explorer.inFlight",
        "the first prediction",
    );
    let names =
        browser.eval("[...document.querySelectorAll('#probabilities td.class')].map(c => c.textContent)");
    assert_eq!(names, json!(["blue", "green", "red"]));
    let (prediction, _) = page_numbers(&mut browser);
    assert!(
        ["blue", "green", "red"].contains(&prediction.as_str()),
        "the prediction is named: {prediction}"
    );
    assert_eq!(
        browser.eval("document.getElementById('input-source').textContent"),
        json!("test image 0, labelled blue")
    );
    // What the model sees is drawn in colour, pixel for pixel; the pad shows the
    // image enlarged, in colour too.
    let (w, h, shown) = canvas_rgb(&mut browser, "model-input");
    assert_eq!((w, h), (WIDTH, HEIGHT));
    assert_eq!(
        shown,
        colour_image(classes[0].1, 0).pixels,
        "test image 0 as drawn"
    );
    // The pad has the image's shape, 280 pixels wide, so nothing is stretched.
    let (pad_w, pad_h, pad) = canvas_rgb(&mut browser, "pad");
    assert_eq!((pad_w, pad_h), (280, 187), "the pad's shape is the model's");
    let at = |x: usize, y: usize| &pad[(y * pad_w + x) * 3..][..3];
    // The square's centre (5, 8) of 24×16, and the gray corner.
    let centre = (5 * pad_w / WIDTH, 8 * pad_h / HEIGHT);
    assert!(
        at(centre.0, centre.1)[2] > 180,
        "blue on the pad: {:?}",
        at(centre.0, centre.1)
    );
    assert_eq!(at(2, 2), [120, 120, 120]);
    for id in ["saliency", "times-input"] {
        let n = drawn(&mut browser, id);
        assert!(n > 10, "the {id} map has {n} colours: not drawn");
    }
    // The first layer's filters are colour tiles; every layer is drawn.
    let filters = browser.eval(
        "(c => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; \
           let tinted = 0; for (let i = 0; i < d.length; i += 4) if (d[i] !== d[i + 1] || d[i + 1] !== d[i + 2]) tinted++; \
           return [c.dataset.tiles, tinted]; })(document.querySelector('#filter-list canvas'))",
    );
    assert_eq!(filters[0], json!("rgb"), "{filters}");
    assert!(filters[1].as_u64().unwrap() > 20, "colour filters: {filters}");
    let layers = browser.eval(
        "[...document.querySelectorAll('#layer-list figure canvas')].map(c => { \
           const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; \
           const colours = new Set(); \
           for (let i = 0; i < d.length; i += 4) colours.add(d[i] * 65536 + d[i + 1] * 256 + d[i + 2]); \
           return colours.size; })",
    );
    let layers = layers.as_array().expect("layers");
    assert!(layers.len() >= 4, "{layers:?}");
    assert!(
        layers.iter().all(|n| n.as_u64().unwrap() > 2),
        "layers drawn: {layers:?}"
    );
    browser.screenshot(&shots.join("5-colour-test-image.png"));

    // A click on "red" explains that class, by name.
    let before = browser.eval("explorer.updates").as_u64().unwrap();
    browser.eval("document.querySelectorAll('#probabilities tbody tr')[2].click(); true");
    wait_settled(&mut browser, before);
    assert_eq!(
        browser.eval("document.querySelector('#probabilities tr.explained td.class').textContent"),
        json!("red")
    );
    assert!(browser
        .eval("document.getElementById('saliency-class').textContent")
        .as_str()
        .unwrap()
        .ends_with("red"));
    browser.eval("document.querySelectorAll('#probabilities tbody tr')[2].click(); true");

    // A drawing in an orange pen: the page sends its RGB pixels, and shows the
    // numbers the library gives for them (fitted as `predict` fits a photo).
    assert_ne!(
        browser.eval("getComputedStyle(document.getElementById('pen-label')).display"),
        json!("none"),
        "an RGB model's page offers a pen colour"
    );
    browser.eval(
        "document.getElementById('pen').value = '#ff8000'; document.getElementById('clear').click(); true",
    );
    let pad_rect =
        browser.eval("JSON.parse(JSON.stringify(document.getElementById('pad').getBoundingClientRect()))");
    let before = browser.eval("explorer.updates").as_u64().unwrap();
    let zigzag = path_on_pad(
        &pad_rect,
        &[(0.2, 0.2), (0.8, 0.3), (0.2, 0.5), (0.8, 0.7), (0.3, 0.85)],
    );
    browser.stroke(&zigzag, false);
    wait_settled(&mut browser, before);
    // The test image asked for by the click above may answer after the pad was
    // cleared: it must not come back under the drawing.
    let (_, _, pad) = canvas_rgb(&mut browser, "pad");
    assert_eq!(&pad[..3], [0, 0, 0], "the pad was cleared");
    let drawing = browser.eval(
        "({width: explorer.lastDrawing.width, height: explorer.lastDrawing.height, \
           channels: explorer.lastDrawing.channels, pixels: Array.from(explorer.lastDrawing.pixels), \
           framed: explorer.lastResult.input.pixels})",
    );
    assert_eq!(drawing["channels"], json!(3));
    let image = Image {
        pixels: drawing["pixels"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_u64().unwrap() as u8)
            .collect(),
        height: drawing["height"].as_u64().unwrap() as usize,
        width: drawing["width"].as_u64().unwrap() as usize,
        channels: 3,
    };
    let framed = base64_decode(drawing["framed"].as_str().unwrap());
    let expected = fit_image(
        &image.to_planes(3),
        (3, image.height, image.width),
        (HEIGHT, WIDTH),
        Fit::Crop,
    );
    assert_eq!(
        framed, expected,
        "the page's input is the drawing fitted to 24×16"
    );
    let (_, _, shown_input) = canvas_rgb(&mut browser, "model-input");
    let plane = HEIGHT * WIDTH;
    let interleaved: Vec<u8> = (0..plane)
        .flat_map(|i| [framed[i], framed[i + plane], framed[i + 2 * plane]])
        .collect();
    assert_eq!(
        shown_input, interleaved,
        "the drawing as the model sees it, in colour"
    );
    let orange = interleaved
        .chunks(3)
        .filter(|p| p[0] > 60 && p[1] > 20 && p[0] > p[1] && p[1] > p[2])
        .count();
    assert!(orange > 10, "{orange} orange pixels in what the model sees");
    let mut model = ferrocnn::io::load_model(&model_path).unwrap();
    let x = ndarray::Array4::from_shape_vec((1, 3, HEIGHT, WIDTH), spec.input_of(&image, Fit::Crop).unwrap())
        .unwrap();
    let probabilities = softmax_rows(&predict(model.as_mut(), x.view().into_dyn()));
    let (prediction, shown) = page_numbers(&mut browser);
    assert_eq!(shown.len(), 3);
    for (k, (_, on_page)) in shown.iter().enumerate() {
        let p = f64::from(probabilities[[0, k]]);
        assert!(
            (p - on_page).abs() <= 1e-6,
            "class {k}: predict gives {p}, the page {on_page}"
        );
    }
    let best = (0..3)
        .max_by(|&a, &b| probabilities[[0, a]].total_cmp(&probabilities[[0, b]]))
        .unwrap();
    assert_eq!(prediction, classes[best].0);
    browser.screenshot_of(".top", &shots.join("6-colour-drawing.png"));
    eprintln!(
        "explorer page, colour model: whole test {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(
        browser.page_errors.is_empty(),
        "the page reported errors: {:?}",
        browser.page_errors
    );
}
