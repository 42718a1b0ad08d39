-- nvim-lsp-test.lua: Neovim's built-in LSP client against the Flowmetal language server.
--
-- End-to-end: real Neovim (0.7 or later), real `flowmetal lsp`. Run by
-- tests/editors/test_lsp_editors.py, which sets up
--
--   FLOWMETAL_PYTHON        a Python that can run `-m flowmetal lsp'
--   FLOWMETAL_LSP_TEST_DIR  a scratch directory holding copies of
--                           broken/naptime.flow (from tests/editors/data/)
--                           and workspace/{app,lib}.flow (tests/testdata/lsp/)
--
-- and runs:
--
--   nvim --headless -n -i NONE -u tests/editors/nvim-lsp-test.lua
--
-- Every check prints `ok` or `FAIL`; Neovim exits with status 0 (`qa!`) when
-- all passed, and non-zero (`cq!`) otherwise.

local python = os.getenv('FLOWMETAL_PYTHON')
local root = os.getenv('FLOWMETAL_LSP_TEST_DIR')
local failures = 0

local function out(text)
  io.stdout:write(text .. '\n')
  io.stdout:flush()
end

local function check(ok, what, detail)
  if ok then
    out('ok    ' .. what)
  else
    failures = failures + 1
    out('FAIL  ' .. what .. (detail and ('\n      ' .. detail) or ''))
  end
  return ok
end

local function finish()
  out(failures == 0 and 'PASSED' or string.format('FAILED (%d)', failures))
  vim.cmd(failures == 0 and 'qa!' or 'cq!')
end

local function contains(haystack, needle)
  return type(haystack) == 'string' and haystack:find(needle, 1, true) ~= nil
end

-- Open `file`, start `python -m flowmetal lsp` rooted at its directory, and attach it.
local function open_with_server(file)
  vim.cmd('edit ' .. vim.fn.fnameescape(file))
  local bufnr = vim.api.nvim_get_current_buf()
  vim.bo[bufnr].filetype = 'flowmetal'
  local dir = vim.fn.fnamemodify(file, ':h')
  local client_id = vim.lsp.start_client({
    name = 'flowmetal',
    cmd = { python, '-m', 'flowmetal', 'lsp' },
    root_dir = dir,
    workspace_folders = { { uri = vim.uri_from_fname(dir), name = vim.fn.fnamemodify(dir, ':t') } },
    on_exit = function(code, signal)
      out(string.format('      server exited: code %s, signal %s', code, signal))
    end,
  })
  assert(client_id, 'vim.lsp.start_client failed')
  vim.lsp.buf_attach_client(bufnr, client_id)
  local ready = vim.wait(30000, function()
    local client = vim.lsp.get_client_by_id(client_id)
    return client ~= nil and client.initialized == true
  end, 20)
  check(ready, 'the server initializes')
  return bufnr, client_id
end

local function stop(client_id)
  vim.lsp.stop_client(client_id)
  vim.wait(5000, function() return vim.lsp.get_client_by_id(client_id) == nil end, 20)
end

-- The server's answer to `method` at the 1-based `line` and 0-based byte `col`.
local function request_at(bufnr, client_id, method, line, col)
  vim.api.nvim_win_set_cursor(0, { line, col })
  local params = vim.lsp.util.make_position_params()
  local replies, err = vim.lsp.buf_request_sync(bufnr, method, params, 10000)
  local reply = replies and replies[client_id]
  if not reply then
    check(false, method .. ' answered', 'no reply: ' .. tostring(err))
    return nil
  end
  if reply.err then
    check(false, method .. ' answered', vim.inspect(reply.err))
    return nil
  end
  out('      ' .. method .. ' -> ' .. vim.inspect(reply.result):gsub('\n', ' '))
  return reply.result
end

-- The 1-based line and 0-based byte column of the first `needle` in the buffer.
local function find(bufnr, needle)
  for i, text in ipairs(vim.api.nvim_buf_get_lines(bufnr, 0, -1, false)) do
    local col = text:find(needle, 1, true)
    if col then return i, col - 1 end
  end
  error('not in the buffer: ' .. needle)
end

local function hover_value(bufnr, client_id, line, col)
  local result = request_at(bufnr, client_id, 'textDocument/hover', line, col)
  if not check(result ~= nil and type(result.contents) == 'table', 'hover has contents') then
    return nil
  end
  check(result.contents.kind == 'markdown', 'hover is markdown', tostring(result.contents.kind))
  return result.contents.value
end

-- A broken program: the diagnostic, hover on a defn, then the fix.
local function broken_program()
  local bufnr, client_id = open_with_server(root .. '/broken/naptime.flow')
  local got = vim.wait(30000, function() return #vim.diagnostic.get(bufnr) > 0 end, 20)
  local diags = vim.diagnostic.get(bufnr)
  for _, d in ipairs(diags) do
    out(string.format('      diagnostic %d:%d-%d:%d severity %d: %s', d.lnum + 1, d.col,
      d.end_lnum + 1, d.end_col, d.severity, d.message))
  end
  if check(got and #diags == 1, 'one diagnostic arrives', #diags .. ' diagnostics') then
    local d = diags[1]
    check(d.message == 'unknown name `sleep`; did you mean `sleep!`?', 'its message', d.message)
    check(d.severity == vim.diagnostic.severity.ERROR, 'it is an error', tostring(d.severity))
    check(d.lnum == 10 and d.col == 5 and d.end_lnum == 10 and d.end_col == 10,
      'it covers `sleep` on line 11', vim.inspect({ d.lnum, d.col, d.end_lnum, d.end_col }))
    check(d.source == 'flowmetal', 'its source', tostring(d.source))
  end

  local line, col = find(bufnr, '(nap 1)')
  local value = hover_value(bufnr, client_id, line, col + 2)
  check(contains(value, '(defn nap [n : int?] : nil?)'), 'hover shows the signature of `nap`', value)
  check(contains(value, 'Wait `n` seconds, durably.'), 'hover shows the docstring of `nap`', value)

  -- Fix it in the buffer: `sleep` -> `sleep!`; Neovim sends the edit, the diagnostic goes away.
  line, col = find(bufnr, '(sleep (')
  vim.api.nvim_buf_set_text(bufnr, line - 1, col + 6, line - 1, col + 6, { '!' })
  local cleared = vim.wait(30000, function() return #vim.diagnostic.get(bufnr) == 0 end, 20)
  check(cleared, 'the diagnostic goes away after the fix',
    vim.inspect(vim.tbl_map(function(d) return d.message end, vim.diagnostic.get(bufnr))))
  value = hover_value(bufnr, client_id, line, col + 3)
  check(contains(value, 'defendpoint sleep!'), 'hover on the fixed call names the endpoint', value)
  stop(client_id)
end

-- A two-package workspace: hover and go-to-definition into the other file.
local function across_files()
  local bufnr, client_id = open_with_server(root .. '/workspace/app.flow')
  local line, col = find(bufnr, '(norm p')
  local value = hover_value(bufnr, client_id, line, col + 2)
  check(contains(value, '(defn norm [p : point? :default ... scale : int? :default ...] : int?)'),
    'hover shows the signature of `norm` from lib.flow', value)
  check(contains(value, 'The taxicab norm of `p`, times `scale`.'), 'hover shows the docstring of `norm`', value)

  local result = request_at(bufnr, client_id, 'textDocument/definition', line, col + 1)
  local loc = result and (result.uri and result or result[1])
  if check(loc ~= nil, 'definition answers a location') then
    local path = vim.uri_to_fname(loc.uri or loc.targetUri)
    local range = loc.range or loc.targetSelectionRange
    check(vim.loop.fs_realpath(path) == vim.loop.fs_realpath(root .. '/workspace/lib.flow'),
      'the definition is in lib.flow', path)
    check(range.start.line == 8 and range.start.character == 8, 'at `norm` on line 9',
      vim.inspect(range))
  end
  stop(client_id)
end

local ok, err = xpcall(function()
  assert(python and root, 'FLOWMETAL_PYTHON and FLOWMETAL_LSP_TEST_DIR must be set')
  broken_program()
  across_files()
end, debug.traceback)
if not ok then
  check(false, 'the script ran to the end', err)
end
finish()
