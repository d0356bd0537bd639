// The dashboard: one Socket.IO connection keeps every view current. After the first load the
// page asks the daemon for nothing on a timer: state arrives as events, a reconnect catches up
// with `sync`, and REST is used for the user's commands and for the two lists that events do
// not replay (log tails and recent requests), once per connect.
(() => {
  'use strict';

  const CHILDREN = [['qwen-proxy', 'qwenProxy'], ['provider-router', 'providerRouter']];
  const TOKEN_KEY = 'apiserver.token';
  const TOPICS = ['proxy:status', 'credentials:updated', 'providers:updated', 'models:updated',
    'settings:updated', 'proxy:log', 'history:updated', 'proxy:stats'];
  const UNNUMBERED = new Set(['proxy:log', 'history:updated', 'proxy:stats']);
  const LOG_LINES = 200;
  const EVENT_ITEMS = 100;

  const $ = (selector, root = document) => root.querySelector(selector);
  const cards = {};    // child name -> its <article>
  const uptime = {};   // child name -> {base seconds, at performance.now(), running}
  const sync = { seq: null, instance: null, resumeSeq: null, resumeInstance: null };
  let socket = null;

  // -- REST -------------------------------------------------------------------------------

  const token = () => sessionStorage.getItem(TOKEN_KEY) || '';

  async function api(method, path, body) {
    const headers = {};
    if (token()) headers.Authorization = `Bearer ${token()}`;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const response = await fetch(path, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
    });
    const data = await response.json().catch(() => null);
    if (response.status === 401) askToken('The daemon refused the token: enter it again.');
    if (!response.ok) throw new Error(data?.error?.message || `${response.status} ${response.statusText}`);
    return data;
  }

  function notice(text) {
    const box = $('#notice');
    box.textContent = text || '';
    box.hidden = !text;
  }

  // -- formatting ---------------------------------------------------------------------------

  function duration(seconds) {
    seconds = Math.max(0, Math.floor(seconds));
    const d = Math.floor(seconds / 86400);
    const h = Math.floor((seconds % 86400) / 3600);
    const m = Math.floor((seconds % 3600) / 60);
    const s = seconds % 60;
    const pad = (n) => String(n).padStart(2, '0');
    return (d ? `${d}d ` : '') + (d || h ? `${h}h ` : '') + `${pad(m)}m ${pad(s)}s`;
  }

  // Coarse, for far-away times: "5 days", "3 hours", "12 minutes".
  function roughly(seconds) {
    const units = [['day', 86400], ['hour', 3600], ['minute', 60]];
    for (const [unit, size] of units) {
      const n = Math.floor(seconds / size);
      if (n >= 1) return `${n} ${unit}${n === 1 ? '' : 's'}`;
    }
    return 'less than a minute';
  }

  function bytes(value) {
    if (!value) return '–';
    return value >= 1 << 30 ? `${(value / (1 << 30)).toFixed(2)} GiB` : `${(value / (1 << 20)).toFixed(1)} MiB`;
  }

  const clock = (date) => date.toLocaleTimeString([], { hour12: false });

  function exitText(lastExit) {
    if (!lastExit) return '–';
    const how = lastExit.signal ? `signal ${lastExit.signal}` : `exit code ${lastExit.code}`;
    return lastExit.at ? `${how} at ${clock(new Date(lastExit.at))}` : how;
  }

  // -- children -----------------------------------------------------------------------------

  function buildCards() {
    const template = $('#child-template');
    for (const [name] of CHILDREN) {
      const card = template.content.firstElementChild.cloneNode(true);
      card.id = `child-${name}`;
      card.dataset.child = name;
      $('[data-field="name"]', card).textContent = name;
      $('[data-field="name"]', card).id = `child-${name}-title`;
      card.setAttribute('aria-labelledby', `child-${name}-title`);
      $('.actions', card).setAttribute('aria-label', `${name} controls`);
      for (const button of card.querySelectorAll('button[data-action]')) {
        button.dataset.child = name;
        button.setAttribute('aria-label', `${button.textContent} ${name}`);
      }
      $('.log', card).setAttribute('aria-label', `${name} log`);
      $('#children').append(card);
      cards[name] = card;
    }
  }

  function field(card, name, text) {
    const element = $(`[data-field="${name}"]`, card);
    if (element.textContent !== text) element.textContent = text;
  }

  function renderChild(name, child) {
    const card = cards[name];
    card.dataset.state = child.state || (child.running ? 'running' : 'stopped');
    field(card, 'state', card.dataset.state);
    field(card, 'pid', child.pid ? String(child.pid) : '–');
    field(card, 'port', child.port ? String(child.port) : '–');
    field(card, 'restarts', String(child.restarts ?? 0));
    field(card, 'lastExit', exitText(child.lastExit));
    field(card, 'reason', child.reason || '–');
    renderStats(name, child);
  }

  function renderStats(name, child) {
    const card = cards[name];
    const running = (child.state || card.dataset.state) === 'running';
    uptime[name] = { base: Number(child.uptime) || 0, at: performance.now(), running };
    field(card, 'cpu', child.pid ? `${Number(child.cpu || 0).toFixed(1)} %` : '–');
    field(card, 'memory', child.pid ? bytes(child.memory) : '–');
    tickUptime();
  }

  // A local clock, not a request: uptime counts up between events.
  function tickUptime() {
    for (const [name] of CHILDREN) {
      const u = uptime[name];
      if (!u) continue;
      const seconds = u.base + (performance.now() - u.at) / 1000;
      field(cards[name], 'uptime', u.running ? duration(seconds) : '–');
    }
  }

  function appendLog(name, entry) {
    const pre = $('.log', cards[name]);
    if (!pre) return;
    const atBottom = pre.scrollHeight - pre.scrollTop - pre.clientHeight < 24;
    const line = document.createElement('span');
    line.className = entry.stream === 'stderr' ? 'stderr' : 'stdout';
    line.textContent = `${entry.line}\n`;
    pre.append(line);
    while (pre.childElementCount > LOG_LINES) pre.firstElementChild.remove();
    if (atBottom) pre.scrollTop = pre.scrollHeight;
  }

  async function loadLogs() {
    await Promise.all(CHILDREN.map(async ([name]) => {
      const data = await api('GET', `/api/proxy/${name}/logs?lines=${LOG_LINES}`);
      $('.log', cards[name]).replaceChildren();
      for (const entry of data.lines) appendLog(name, entry);
    }));
  }

  // -- catalog, credentials, history ----------------------------------------------------------

  function renderCredentials(c) {
    const element = $('#credentials');
    const valid = c.valid ?? c.isValid;
    let text;
    if (!c.hasCredentials) {
      element.dataset.state = 'missing';
      text = 'No credentials stored: capture them with the browser extension.';
    } else {
      const until = c.expiresAt ? new Date(c.expiresAt * 1000) : null;
      if (c.isExpired) {
        element.dataset.state = 'expired';
        text = `Expired${until ? ` on ${until.toLocaleString()}` : ''}.`;
      } else {
        element.dataset.state = valid ? 'valid' : 'invalid';
        text = until ? `Valid until ${until.toLocaleString()} (in ${roughly((until - Date.now()) / 1000)}).`
          : 'Valid, no expiry recorded.';
      }
    }
    element.textContent = text;
  }

  function renderProviders(items) {
    const body = $('#providers tbody');
    const rows = new Map([...body.rows].map((row) => [row.dataset.id, row]));
    const wanted = [];
    for (const provider of items) {
      let row = rows.get(provider.id);
      if (!row) row = providerRow(provider);
      rows.delete(provider.id);
      const toggle = $('input[type="checkbox"]', row);
      toggle.checked = Boolean(provider.enabled);
      toggle.disabled = false;
      const priority = $('input[type="number"]', row);
      if (document.activeElement !== priority) priority.value = String(provider.priority);
      row.dataset.enabled = String(Boolean(provider.enabled));
      $('.name', row).textContent = provider.name;
      $('.type', row).textContent = provider.type;
      wanted.push(row);
    }
    for (const row of rows.values()) row.remove();
    body.append(...wanted); // in the daemon's order: priority, then name
  }

  function providerRow(provider) {
    const row = document.createElement('tr');
    row.dataset.id = provider.id;
    const id = `provider-${provider.id.replace(/[^a-z0-9_-]/gi, '_')}`;
    row.innerHTML = '<th scope="row" class="name"></th><td class="type"></td>' +
      `<td><input type="checkbox" id="${id}-enabled"><label class="visually-hidden" for="${id}-enabled"></label></td>` +
      `<td><label class="visually-hidden" for="${id}-priority"></label><input type="number" step="1" id="${id}-priority"></td>`;
    const [enabledLabel, priorityLabel] = row.querySelectorAll('label');
    enabledLabel.textContent = `${provider.name} enabled`;
    priorityLabel.textContent = `${provider.name} priority`;
    const toggle = $('input[type="checkbox"]', row);
    toggle.addEventListener('change', async () => {
      toggle.disabled = true;
      try {
        await api('POST', `/api/providers/${encodeURIComponent(provider.id)}/${toggle.checked ? 'enable' : 'disable'}`);
        notice('');
      } catch (error) {
        toggle.checked = !toggle.checked;
        notice(`Could not change ${provider.name}: ${error.message}`);
      } finally {
        toggle.disabled = false;
      }
    });
    const priority = $('input[type="number"]', row);
    priority.addEventListener('change', async () => {
      try {
        await api('PUT', `/api/providers/${encodeURIComponent(provider.id)}`, { priority: Number(priority.value) });
        notice('');
      } catch (error) {
        notice(`Could not set the priority of ${provider.name}: ${error.message}`);
      }
    });
    return row;
  }

  function renderHistory(activities) {
    const body = $('#history tbody');
    if (!activities.length) {
      body.innerHTML = '<tr class="empty"><td colspan="6">No requests yet</td></tr>';
      return;
    }
    body.replaceChildren(...activities.map((item) => {
      const row = document.createElement('tr');
      row.dataset.requestId = item.request_id || '';
      const outcome = item.status || item.metadata?.status || 'pending';
      const cells = [
        clock(new Date(item.created_at ?? item.timestamp_ms)),
        item.model || '–',
        item.provider_id || '–',
        outcome + (item.status_code ? ` (${item.status_code})` : ''),
        item.duration_ms != null ? `${item.duration_ms} ms` : '–',
        item.total_tokens != null ? String(item.total_tokens) : '–',
      ];
      for (const [index, text] of cells.entries()) {
        const cell = document.createElement('td');
        cell.textContent = text;
        if (index === 3) cell.className = `outcome-${outcome}`;
        row.append(cell);
      }
      return row;
    }));
  }

  async function loadHistory() {
    const data = await api('GET', '/api/activity/recent?limit=20');
    renderHistory(data.activities);
  }

  // -- events -------------------------------------------------------------------------------

  function logEvent(name, data, replayed) {
    const list = $('#events');
    const item = document.createElement('li');
    item.dataset.event = name;
    const time = document.createElement('time');
    time.textContent = clock(new Date());
    const code = document.createElement('code');
    code.textContent = name;
    let summary = data.message || '';
    if (data.action) summary = [data.action, data.providerId || data.modelId || data.key || ''].join(' ').trim();
    item.append(time, code, document.createTextNode(summary + (replayed ? ' (missed while away)' : '')));
    list.prepend(item);
    while (list.childElementCount > EVENT_ITEMS) list.lastElementChild.remove();
  }

  function handle(name, data, replayed = false) {
    if (!data || typeof data !== 'object') return;
    if (!UNNUMBERED.has(name) && typeof data.seq === 'number') sync.seq = data.seq;
    if (typeof data.instance === 'string') sync.instance = data.instance;
    switch (name) {
      case 'proxy:status': {
        const aggregate = $('#aggregate');
        aggregate.dataset.status = data.status;
        aggregate.textContent = `proxies ${data.status}`;
        for (const [child, key] of CHILDREN) if (data[key]) renderChild(child, data[key]);
        if (data.providers) renderProviders(data.providers.items || []);
        if (data.models) $('#model-count').textContent = String(data.models.total);
        if (data.credentials) renderCredentials(data.credentials);
        break;
      }
      case 'providers:updated': renderProviders(data.items || []); break;
      case 'models:updated': $('#model-count').textContent = String(data.total); break;
      case 'credentials:updated': renderCredentials(data); break;
      case 'proxy:log': if (cards[data.child]) appendLog(data.child, data); return;
      case 'history:updated': renderHistory(data.activities || []); break;
      case 'proxy:stats':
        for (const [child, key] of CHILDREN) if (data[key]) renderStats(child, data[key]);
        return;
      default: break;
    }
    logEvent(name, data, replayed);
  }

  // -- connection ---------------------------------------------------------------------------

  function setConnection(state, text) {
    const element = $('#connection');
    element.dataset.state = state;
    element.textContent = text;
    document.body.dataset.connection = state;
  }

  async function afterConnect() {
    try {
      await socket.timeout(5000).emitWithAck('subscribe', { events: TOPICS });
      if (sync.resumeSeq !== null) {
        const answer = await socket.timeout(5000).emitWithAck('sync', {
          sinceSeq: sync.resumeSeq, instance: sync.resumeInstance,
        });
        if (answer?.snapshot) {
          for (const [name, data] of Object.entries(answer.state || {})) handle(name, data, true);
        }
        for (const item of answer?.events || []) handle(item.event, item.data, true);
        sync.resumeSeq = null;
      }
      await Promise.all([loadLogs(), loadHistory()]);
      document.body.dataset.synced = 'true';
    } catch (error) {
      notice(`Could not load everything: ${error.message}`);
    }
  }

  function askToken(message) {
    const form = $('#token-form');
    form.hidden = false;
    $('#token-error').textContent = message || '';
    $('#token').focus();
  }

  function connect() {
    socket = io({
      transports: ['websocket', 'polling'],
      tryAllTransports: true,
      reconnectionDelay: 300,
      reconnectionDelayMax: 2000,
      // A function: a token entered later is used by the next (re)connect.
      auth: (callback) => callback(token() ? { token: token() } : {}),
    });
    socket.on('connect', () => {
      setConnection('connected', 'Connected');
      document.body.dataset.synced = 'false';
      $('#token-form').hidden = true;
      afterConnect();
    });
    socket.on('disconnect', () => {
      if (sync.resumeSeq === null) {
        sync.resumeSeq = sync.seq;
        sync.resumeInstance = sync.instance;
      }
      setConnection('disconnected', 'Disconnected — reconnecting…');
    });
    socket.on('connect_error', (error) => {
      if (/token/i.test(error.message || '')) {
        setConnection('disconnected', 'Not connected: API token needed');
        askToken(token() ? 'The daemon refused this token.' : '');
      } else {
        setConnection('disconnected', 'Disconnected — reconnecting…');
      }
    });
    for (const name of TOPICS) socket.on(name, (data) => handle(name, data));
  }

  // -- user actions -------------------------------------------------------------------------

  document.addEventListener('click', async (event) => {
    const button = event.target.closest('button[data-action]');
    if (!button) return;
    const child = button.dataset.child;
    const path = child ? `/api/proxy/${child}/${button.dataset.action}` : `/api/proxy/${button.dataset.action}`;
    button.disabled = true;
    try {
      const result = await api('POST', path);
      notice(result && result.success === false ? result.message : '');
    } catch (error) {
      notice(`${button.textContent} failed: ${error.message}`);
    } finally {
      button.disabled = false;
    }
  });

  $('#token-form').addEventListener('submit', (event) => {
    event.preventDefault(); // the token never goes into the URL
    const value = $('#token').value.trim();
    if (!value) return;
    sessionStorage.setItem(TOKEN_KEY, value);
    $('#token').value = '';
    $('#token-error').textContent = '';
    socket.connect();
  });

  buildCards();
  setInterval(tickUptime, 1000);
  connect();
})();
