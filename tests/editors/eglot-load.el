;;; eglot-load.el --- load eglot for the Emacs tests  -*- lexical-binding: t; -*-

;;; Commentary:

;; eglot is built into Emacs 29 and later; on Debian 12 (Emacs 28) it is the
;; elpa-eglot package, which `emacs -Q' does not activate by itself. Loaded by
;; the test files beside this one, and by test_lsp_editors.py's probe.

;;; Code:

(defun flowmetal-test-load-eglot ()
  "Load eglot, from Emacs itself or from the system's ELPA packages; non-nil if loaded."
  (or (require 'eglot nil t)
      (progn
        (require 'package)
        (let ((package-directory-list
               (append package-directory-list
                       '("/usr/share/emacs/site-lisp/elpa"))))
          (package-activate-all))
        (require 'eglot nil t))))

(provide 'eglot-load)

;;; eglot-load.el ends here
