;;; eglot-runs-test.el --- Running and tracing from Emacs, against the real server  -*- lexical-binding: t; -*-

;;; Commentary:

;; End-to-end test of the run and trace commands of flowmetal-mode:
;; real Emacs, real eglot, real `flowmetal lsp', a real run driven by
;; the server's embedded worker.  Run by tests/editors/test_lsp_editors.py,
;; which sets up
;;
;;   FLOWMETAL_PYTHON        a Python that can run `-m flowmetal lsp'
;;   FLOWMETAL_LSP_TEST_DIR  an empty scratch directory
;;
;; and runs:
;;
;;   emacs --batch -Q -l tests/editors/eglot-load.el -f flowmetal-test-load-eglot \
;;         -l editors/emacs/flowmetal-mode.el \
;;         -l tests/editors/eglot-runs-test.el -f ert-run-tests-batch-and-exit
;;
;; The program (written below into the scratch directory) logs, sleeps
;; 300 ms and answers 2n + 1.  A second test finds a run of it that the
;; command line left in a project's store: not driven (the store is not
;; trusted) until `flowmetal-trust-store'.  A third runs
;; tests/editors/data/fleet.flow, whose tasks get a column in the trace.
;; The server is told to keep its runs in
;; state/runs.db (the `flowmetal-store' option, sent as
;; initializationOptions); the Python side checks afterwards that the
;; run is recorded there.

;;; Code:

(require 'ert)
(require 'cl-lib)
(require 'flowmetal-mode)

(eval-and-compile
  (load (expand-file-name "eglot-kit.el" (file-name-directory (or load-file-name buffer-file-name)))
        nil t))

(defconst flowmetal-runs-test--program
  ";; Log, nap a little, and answer.

(defpackage demo.nap
  (require [flowmetal.log :refer [log!]]
           [flowmetal.time :refer [sleep! make-duration +milliseconds+]])

  (defn nap [n : int?] : int?
    \"Log, nap for 300 ms, and answer twice `n`, plus one.\"
    (log! (str \"napping with \" n))
    (let [twice (* n 2)]
      (sleep! (make-duration 300 +milliseconds+))
      (+ twice 1))))
"
  "The program to run.  The `sleep!' call is on line 11.")

(defconst flowmetal-runs-test--store "state/runs.db"
  "Where the server is told to keep its runs, relative to the project.")

(defun flowmetal-runs-test--project (name file text)
  "A project NAME in the scratch directory holding FILE with TEXT: FILE's path."
  (let ((dir (expand-file-name name (flowmetal-test-env "FLOWMETAL_LSP_TEST_DIR"))))
    (make-directory dir t)
    (with-temp-file (expand-file-name file dir) (insert text))
    (expand-file-name file dir)))

(defun flowmetal-runs-test--line-with (buffer &rest needles)
  "The first line of BUFFER holding all of NEEDLES, as (TEXT . START), or nil."
  (with-current-buffer buffer
    (save-excursion
      (goto-char (point-min))
      (catch 'found
        (while (not (eobp))
          (let ((line (buffer-substring-no-properties (line-beginning-position)
                                                      (line-end-position))))
            (when (cl-every (lambda (needle) (string-search needle line)) needles)
              (throw 'found (cons line (line-beginning-position)))))
          (forward-line 1))
        nil))))

(defun flowmetal-runs-test--contact ()
  "The server command of the registered contact, run with this Python.
Keeps the rest of the registration (the initializationOptions)."
  (let* ((registered (alist-get 'flowmetal-mode eglot-server-programs))
         (options (cl-position-if #'keywordp registered)))
    (should options)
    (append (list (flowmetal-test-env "FLOWMETAL_PYTHON") "-m" "flowmetal" "lsp")
            (nthcdr options registered))))

(ert-deftest flowmetal-runs-eglot-run-trace-and-state ()
  "Run a function from its buffer; follow it live; go to an event; see the state."
  (let* ((file (flowmetal-runs-test--project "runs" "nap.flow" flowmetal-runs-test--program))
         (notified-kinds nil)
         (record (lambda (_server run-id event)
                   (push (cons run-id (plist-get event :kind)) notified-kinds))))
    (advice-add 'flowmetal--on-trace-event :before record)
    (unwind-protect
        (flowmetal-test-visiting (buf file)
          (should (eq major-mode 'flowmetal-mode))
          (let ((flowmetal-store flowmetal-runs-test--store))
            (flowmetal-test-connect (file-name-directory file) (flowmetal-runs-test--contact)))
          ;; The runs buffer is open before the run exists: the run comes
          ;; to it by notifications only.
          (let ((runs-buffer (save-window-excursion (flowmetal-runs))))
            (should (buffer-live-p runs-buffer))
            (should-not (flowmetal-runs-test--line-with runs-buffer "demo.nap/nap"))
            ;; Run the function at point; the argument comes from the reader.
            (goto-char (point-min))
            (search-forward "(defn nap")
            (let* ((asked nil)
                   (flowmetal-read-argument-function
                    (lambda (param entry)
                      (push (list (plist-get param :name) (plist-get param :type) entry) asked)
                      "20"))
                   (run-id (save-window-excursion (flowmetal-run)))
                   (trace (get-buffer (format "*flowmetal trace %s*" run-id))))
              (message "run %s" run-id)
              (should (equal asked '(("n" "int?" "demo.nap/nap"))))
              (should (and (stringp run-id) (> (length run-id) 0)))
              (should (buffer-live-p trace))
              ;; The whole run comes into the trace buffer as it goes.
              (should (flowmetal-test-wait
                       (lambda () (flowmetal-runs-test--line-with trace "run-completed"))
                       30))
              (message "trace:\n%s" (with-current-buffer trace (buffer-string)))
              ;; ... and its end came by a `flowmetal/traceEvent' notification.
              (should (member (cons run-id "run-completed") notified-kinds))
              (should (flowmetal-runs-test--line-with trace "run-completed" "→ 41"))
              (should (flowmetal-runs-test--line-with trace "log" "napping with 20"))
              ;; The summary follows `flowmetal/runUpdated'.
              (should (flowmetal-test-wait
                       (lambda () (flowmetal-runs-test--line-with trace "Result: 41"))
                       10))
              (should (flowmetal-runs-test--line-with trace run-id "demo.nap/nap" "completed"))
              ;; The runs buffer has the run, completed, with its result.
              (should (flowmetal-test-wait
                       (lambda () (flowmetal-runs-test--line-with
                                   runs-buffer run-id "demo.nap/nap" "completed" "41"))
                       10))
              (message "runs:\n%s" (with-current-buffer runs-buffer (buffer-string)))
              ;; Read again (g), it is still there, once.
              (with-current-buffer runs-buffer
                (revert-buffer)
                (should (flowmetal-runs-test--line-with runs-buffer run-id "completed" "41"))
                (should (= 1 (how-many (regexp-quote run-id) (point-min) (point-max))))
                (should-not mode-line-process)
                ;; A store of more runs than `flowmetal-runs-limit': the last started, and
                ;; the mode line says the list was cut.
                (let ((flowmetal-runs-limit 1))
                  (revert-buffer)
                  (should (flowmetal-runs-test--line-with runs-buffer run-id "completed"))
                  (should (equal mode-line-process " [the 1 started last]")))
                (revert-buffer)
                (should-not mode-line-process)
                ;; Replay it (r): it reproduces.  Cancel it (c): it had ended.
                (goto-char (cdr (flowmetal-runs-test--line-with runs-buffer run-id)))
                (should (equal (tabulated-list-get-id) run-id))
                (let ((replay (flowmetal-runs-replay)))
                  (should (eq (plist-get replay :reproduces) t))
                  (should (equal (plist-get replay :value) "41")))
                (should (equal (plist-get (flowmetal-runs-cancel) :status) "completed")))
              ;; RET on the `sleep!' step's request: the endpoint call, line 11.
              (let ((event-line (flowmetal-runs-test--line-with
                                 trace "step-requested" "flowmetal.time/sleep!"))
                    landed)
                (should event-line)
                (save-window-excursion
                  (with-current-buffer trace
                    (goto-char (cdr event-line))
                    (flowmetal-trace-visit-event)
                    (setq landed (list (current-buffer) (line-number-at-pos)
                                       (buffer-substring-no-properties
                                        (point) (line-end-position))))))
                (message "landed on line %s: %s" (nth 1 landed) (nth 2 landed))
                (should (eq (nth 0 landed) buf))
                (should (= (nth 1 landed) 11))
                (should (string-prefix-p "(sleep! (make-duration 300 +milliseconds+))"
                                         (nth 2 landed))))
              ;; The state there: the entry function, its parameter and its `let'.
              (let ((state (get-buffer "*flowmetal state*")))
                (should (buffer-live-p state))
                (message "state:\n%s" (with-current-buffer state (buffer-string)))
                (should (flowmetal-runs-test--line-with state "step-requested" "step 2"))
                (should (flowmetal-runs-test--line-with state "demo.nap/nap" "nap.flow:11:7"))
                (should (flowmetal-runs-test--line-with state "n : int? = 20"))
                (should (with-current-buffer state
                          (goto-char (point-min))
                          (re-search-forward "^  twice : [^=\n]+ = 40$" nil t)))))))
      (advice-remove 'flowmetal--on-trace-event record))))

(ert-deftest flowmetal-runs-eglot-untrusted-store-until-trusted ()
  "A run left in the project's store waits, marked, until the user trusts the store."
  (let* ((file (flowmetal-runs-test--project "shipped" "nap.flow" flowmetal-runs-test--program))
         (dir (file-name-directory file))
         (flowmetal-trusted-stores nil)
         run-id)
    ;; Someone else recorded a run in the project's store (the default one).
    (with-temp-buffer
      (let ((default-directory dir))
        (should (eq 0 (call-process (flowmetal-test-env "FLOWMETAL_PYTHON") nil t nil
                                    "-m" "flowmetal" "run" "--detach" "nap.flow" "nap" "5"))))
      (setq run-id (string-trim (buffer-string))))
    (message "shipped run %s" run-id)
    (flowmetal-test-visiting (buf file)
      (flowmetal-test-connect dir (flowmetal-runs-test--contact))
      (let ((runs-buffer (save-window-excursion (flowmetal-runs))))
        ;; Listed, pending, saying why; and still pending after the server's looks.
        (should (flowmetal-runs-test--line-with runs-buffer run-id "pending" "not run here"))
        (sleep-for 1.0)
        (with-current-buffer runs-buffer (revert-buffer))
        (message "runs:\n%s" (with-current-buffer runs-buffer (buffer-string)))
        (should (flowmetal-runs-test--line-with runs-buffer run-id "pending" "not run here"))
        ;; Trusted (after asking): it runs, live.
        (let ((asked nil))
          (cl-letf (((symbol-function 'yes-or-no-p)
                     (lambda (prompt) (setq asked prompt) t)))
            (flowmetal-trust-store))
          (should (string-match-p "\\.flowmetal/store\\.db" asked)))
        (should (member (expand-file-name ".flowmetal/store.db" dir) flowmetal-trusted-stores))
        (should (flowmetal-test-wait
                 (lambda () (flowmetal-runs-test--line-with runs-buffer run-id "completed" "11"))
                 30))
        (should-not (flowmetal-runs-test--line-with runs-buffer run-id "not run here"))))))

(defconst flowmetal-runs-test--fleet
  (with-temp-buffer
    (insert-file-contents (expand-file-name "data/fleet.flow"
                                            (file-name-directory (or load-file-name buffer-file-name))))
    (buffer-string))
  "A program with tasks: three hosts rebooted at once, one of them cancelled.")

(ert-deftest flowmetal-runs-eglot-trace-of-a-run-with-tasks ()
  "A run with tasks: its trace has a task column, each event in its task's."
  (let ((file (flowmetal-runs-test--project "tasks" "fleet.flow" flowmetal-runs-test--fleet)))
    (flowmetal-test-visiting (buf file)
      (flowmetal-test-connect (file-name-directory file) (flowmetal-runs-test--contact))
      (goto-char (point-min))
      (search-forward "(defn reboot-all")
      (let* ((run-id (save-window-excursion (flowmetal-run)))
             (trace (get-buffer (format "*flowmetal trace %s*" run-id))))
        (should (flowmetal-test-wait
                 (lambda () (flowmetal-runs-test--line-with trace "run-completed"))
                 30))
        (message "trace with tasks:\n%s" (with-current-buffer trace (buffer-string)))
        (should (flowmetal-runs-test--line-with trace "seq" "task" "kind" "details"))
        (should (flowmetal-runs-test--line-with trace "T0   run-started"))
        (should (flowmetal-runs-test--line-with trace "T0   task-spawned" "→ task 3"))
        (should (flowmetal-runs-test--line-with trace "T3   step-requested" "flowmetal.time/sleep!"))
        (should (flowmetal-runs-test--line-with trace "T3   task-completed" "→ \"web-2 up\""))
        (should (flowmetal-runs-test--line-with trace "T2   task-completed" "→ \"web-1 up\""))
        (should (flowmetal-runs-test--line-with trace "T1   task-cancelled"))
        (should (flowmetal-runs-test--line-with trace "T0   run-completed"))
        ;; Every event line has its task; the events are in order, each once.
        (with-current-buffer trace
          (let (seqs)
            (goto-char (point-min))
            (while (not (eobp))
              (let ((event (get-text-property (point) 'flowmetal-event)))
                (when event
                  (push (plist-get event :seq) seqs)
                  (should (looking-at-p (format " *%d  [^ ]+  T%d +" (plist-get event :seq)
                                                (flowmetal--event-task event))))))
              (forward-line 1))
            (setq seqs (nreverse seqs))
            (should (equal seqs (number-sequence 1 (length seqs))))
            (should (> (length seqs) 30))))))))

(provide 'eglot-runs-test)

;;; eglot-runs-test.el ends here
