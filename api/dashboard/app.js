/* api/dashboard/app.js — the built-in dashboard: classes with reference
 * thumbnails, thresholds, geometry and ROI mask, a live feed of inspections (Server-Sent Events
 * from GET /v1/events read with fetch so the Bearer token travels; polling
 * GET /v1/inspections?after_id= when the daemon has no event stream),
 * per-class counts and anomaly rate over time, and an inspection's detail
 * (image, overlay, regions).  With auth on the token is asked once and kept
 * in sessionStorage (or passed once as #token=... in the URL).  Images are
 * fetched with the token and shown as blob: URLs. */
'use strict';
(function () {
  const KEY = 'resadd.token', FEED_MAX = 200, POLL_MS = 2000;
  const $ = (id) => document.getElementById(id);
  const S = { token: sessionStorage.getItem(KEY) || '', insp: new Map(), cursor: 0, classes: [], live: false,
              refThumbs: new Map(), stopped: false };

  /* #token=T (kept in sessionStorage, then removed from the URL) and
   * #inspection=ID (opens its detail view) */
  const hash = new URLSearchParams(location.hash.slice(1));
  if (hash.get('token')) {
    S.token = hash.get('token');
    sessionStorage.setItem(KEY, S.token);
    hash.delete('token');
    history.replaceState(null, '', location.pathname + location.search + (String(hash) ? '#' + hash : ''));
  }

  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === 'class') e.className = v; else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v);
    }
    for (const k of kids) e.append(k instanceof Node ? k : document.createTextNode(k == null ? '' : String(k)));
    return e;
  }
  const svgEl = (tag, attrs) => {
    const e = document.createElementNS('http://www.w3.org/2000/svg', tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    return e;
  };
  const headers = (extra) => Object.assign(S.token ? { Authorization: 'Bearer ' + S.token } : {}, extra || {});

  class AuthError extends Error {}
  async function api(path) {
    const r = await fetch(path, { headers: headers() });
    if (r.status === 401) { needToken('the daemon asks for a token'); throw new AuthError('401'); }
    if (r.status === 403) { needToken('this token may not read here (needs scope read)'); throw new AuthError('403'); }
    if (!r.ok) { const e = new Error(path + ': HTTP ' + r.status); e.status = r.status; throw e; }
    return r.json();
  }
  /* an image behind the token, as a blob: URL (null if not there) */
  async function blobUrl(path) {
    try {
      const r = await fetch(path, { headers: headers() });
      if (!r.ok) return null;
      return URL.createObjectURL(await r.blob());
    } catch (e) { return null; }
  }
  function setImg(img, path, alt) {
    img.alt = alt;
    blobUrl(path).then((u) => { if (u) img.src = u; else img.alt = alt + ' (unavailable)'; });
    return img;
  }

  function needToken(msg) {
    $('login').hidden = false;
    $('login-msg').textContent = S.token ? msg : '';
    $('status').textContent = 'token needed';
  }
  $('login').addEventListener('submit', (ev) => {
    ev.preventDefault();
    S.token = $('token').value.trim();
    sessionStorage.setItem(KEY, S.token);
    $('login').hidden = true;
    start();
  });
  $('logout').addEventListener('click', () => { sessionStorage.removeItem(KEY); S.token = ''; location.reload(); });

  /* ---- classes ---- */
  const fmt = (x, d) => (x == null || Number.isNaN(x) ? '–' : Number(x).toFixed(d));
  /* What a class inspects: frame → working grid, the ROI when it is not the
   * whole frame, the mask; before the first references only what was asked. */
  function geometryLine(g) {
    const parts = [];
    if (g.fixed) {
      parts.push(`frame ${g.frame.width}×${g.frame.height} → grid ${g.working.width}×${g.working.height}`);
      const r = g.roi || [];
      if (r.length === 4 && (r[0] || r[1] || r[2] !== g.frame.width || r[3] !== g.frame.height))
        parts.push(`ROI ${r[2]}×${r[3]} at ${r[0]},${r[1]}`);
      if (g.fit && g.fit !== 'none') parts.push('fit ' + g.fit);
    } else {
      parts.push('geometry set by the first references' + (g.size ? ` (short side ${g.size})` : ''));
    }
    if (g.roi_mask) parts.push(`ROI mask ${g.roi_mask.width}×${g.roi_mask.height}`);
    return el('div', { class: 'geo muted' }, parts.join(' · '));
  }

  async function loadClasses() {
    const j = await api('/v1/classes');
    S.classes = j.classes || [];
    const box = $('classes');
    box.replaceChildren();
    if (!S.classes.length) box.append(el('p', { class: 'muted' }, 'no classes yet (POST /v1/classes)'));
    for (const c of S.classes) {
      const thumbs = el('div', { class: 'thumbs' });
      const card = el('div', { class: 'card', 'data-class': c.name },
        el('h3', {}, c.name),
        el('div', { class: 'muted' }, c.description || ''),
        el('div', {}, 'threshold ', el('b', {}, fmt(c.threshold, 4)), ' (' + c.threshold_source + ')'),
        el('div', {}, c.references + ' references · ', c.ready ? el('span', { class: 'ok' }, 'ready')
          : el('span', { class: 'bad' }, c.loading ? 'loading' : 'not ready')),
        geometryLine(c.geometry || {}),
        thumbs);
      box.append(card);
      if (c.geometry && c.geometry.roi_mask)
        thumbs.append(setImg(el('img', { class: 'mask', title: 'ROI mask: white is inspected' }),
          '/v1/classes/' + encodeURIComponent(c.name) + '/roi-mask', 'ROI mask'));
      api('/v1/classes/' + encodeURIComponent(c.name) + '/references').then((r) => {
        for (const ref of (r.references || []).slice(0, 4))
          thumbs.append(setImg(el('img', { title: 'reference ' + ref.id }),
            '/v1/classes/' + encodeURIComponent(c.name) + '/references/' + ref.id, 'reference ' + ref.id));
      }).catch(() => {});
    }
    loadStats();
  }

  /* ---- stats: totals from /v1/stats, a per-minute series from the feed ---- */
  let statsTimer = null;
  function loadStatsSoon() { if (!statsTimer) statsTimer = setTimeout(() => { statsTimer = null; loadStats(); }, 1000); }
  async function loadStats() {
    const tb = $('stats').tBodies[0];
    const rows = await Promise.all(S.classes.map((c) =>
      api('/v1/stats?class=' + encodeURIComponent(c.name)).then((s) => [c.name, s]).catch(() => [c.name, null])));
    tb.replaceChildren();
    for (const [name, s] of rows) {
      tb.append(el('tr', { 'data-class': name }, el('td', {}, name), el('td', {}, s ? s.inspections : '–'),
        el('td', {}, s ? s.anomalous : '–'),
        el('td', {}, s && s.anomaly_rate != null ? (100 * s.anomaly_rate).toFixed(1) + ' %' : '–'),
        el('td', {}, s && s.latency_ms ? fmt(s.latency_ms.p50, 0) : '–'), el('td', {}, spark(name))));
    }
  }
  function spark(cls) {
    const W = 240, H = 36, N = 30, now = Math.floor(Date.now() / 60000);
    const n = new Array(N).fill(0), a = new Array(N).fill(0);
    for (const i of S.insp.values()) {
      if (i.class !== cls || i.status !== 'done' || !i.created_at) continue;
      const k = N - 1 - (now - Math.floor(Date.parse(i.created_at) / 60000));
      if (k < 0 || k >= N) continue;
      n[k]++; if (i.anomalous) a[k]++;
    }
    const top = Math.max(1, ...n), bw = W / N;
    const svg = svgEl('svg', { class: 'spark', width: W, height: H, viewBox: `0 0 ${W} ${H}` });
    let path = '';
    for (let k = 0; k < N; k++) {
      if (!n[k]) continue;
      const h = (H - 2) * n[k] / top;
      svg.append(svgEl('rect', { x: k * bw + 1, y: H - h, width: bw - 2, height: h, fill: '#c8d3e6' }));
      const y = H - 1 - (H - 2) * a[k] / n[k];
      path += (path ? ' L' : 'M') + (k * bw + bw / 2).toFixed(1) + ' ' + y.toFixed(1);
      svg.append(svgEl('circle', { cx: (k * bw + bw / 2).toFixed(1), cy: y.toFixed(1), r: 2, fill: '#c5221f' }));
    }
    if (path) svg.append(svgEl('path', { d: path, stroke: '#c5221f', fill: 'none', 'stroke-width': 1.5 }));
    const t = svgEl('title'); t.textContent = 'bars: inspections per minute; red: anomaly rate (last 30 min)';
    svg.append(t);
    return svg;
  }

  /* ---- the feed ---- */
  function verdict(i) {
    if (i.status === 'queued') return el('span', { class: 'muted' }, 'queued');
    if (i.status === 'failed') return el('span', { class: 'bad' }, 'failed' + (i.error ? ': ' + i.error.code : ''));
    return i.anomalous ? el('span', { class: 'bad' }, 'ANOMALOUS') : el('span', { class: 'ok' }, 'good');
  }
  function row(i) {
    const hm = el('td');
    if (i.status === 'done')
      hm.append(setImg(el('img'), '/v1/inspections/' + i.id + '/heatmap.png?kind=overlay', 'heatmap ' + i.id));
    const time = i.created_at ? new Date(i.created_at).toLocaleTimeString() : '';
    return el('tr', { id: 'insp-' + i.id, 'data-id': i.id, 'data-class': i.class, onclick: () => detail(i.id) },
      el('td', {}, '#' + i.id), el('td', {}, time), el('td', {}, i.class), el('td', {}, i.external_id || ''),
      el('td', {}, verdict(i)), el('td', {}, i.confidence != null ? (100 * i.confidence).toFixed(1) + ' %' : '–'),
      el('td', {}, fmt(i.score, 4) + ' / ' + fmt(i.threshold, 4)), hm);
  }
  function add(i) {
    if (!i || typeof i.id !== 'number') return;
    const old = S.insp.get(i.id);
    if (old && old.status === i.status && old.status !== 'queued') return;
    S.insp.set(i.id, i);
    const tb = $('feed').tBodies[0], r = row(i), prev = document.getElementById('insp-' + i.id);
    if (prev) prev.replaceWith(r);
    else {
      let before = null;
      for (const tr of tb.rows) if (Number(tr.dataset.id) < i.id) { before = tr; break; }
      tb.insertBefore(r, before);
    }
    while (tb.rows.length > FEED_MAX) { S.insp.delete(Number(tb.rows[tb.rows.length - 1].dataset.id)); tb.deleteRow(-1); }
    if (i.id > S.maxId || !S.maxId) S.maxId = i.id;
    loadStatsSoon();
  }

  /* live: the event stream when there is one, else polling */
  async function events() {
    const h = headers({ Accept: 'text/event-stream' });
    if (S.lastEvent) h['Last-Event-ID'] = S.lastEvent;
    const r = await fetch('/v1/events', { headers: h });
    if (!r.ok || !r.body || !(r.headers.get('Content-Type') || '').startsWith('text/event-stream'))
      throw Object.assign(new Error('no event stream'), { status: r.status });
    setLive(true, 'live (events)');
    const rd = r.body.getReader(), dec = new TextDecoder();
    let buf = '';
    for (;;) {
      const { value, done } = await rd.read();
      if (done) break;
      buf += dec.decode(value, { stream: true }).replace(/\r\n?/g, '\n');
      let k;
      while ((k = buf.indexOf('\n\n')) >= 0) {
        const block = buf.slice(0, k); buf = buf.slice(k + 2);
        let type = 'message', data = '';
        for (const line of block.split('\n')) {
          const c = line.indexOf(':'), f = c < 0 ? line : line.slice(0, c);
          const v = c < 0 ? '' : line.slice(c + 1).replace(/^ /, '');
          if (f === 'event') type = v; else if (f === 'data') data += (data ? '\n' : '') + v;
          else if (f === 'id') S.lastEvent = v;
        }
        if (data) onEvent(type, data);
      }
    }
  }
  function onEvent(type, data) {
    let j;
    try { j = JSON.parse(data); } catch (e) { return; }
    if (type.startsWith('class') || (j && j.type && String(j.type).startsWith('class'))) { loadClasses().catch(() => {}); return; }
    const i = j && (j.inspection || (j.data && j.data.inspection) || j);
    if (i && typeof i.id === 'number' && i.class && i.status) add(i);
  }
  async function poll() {
    for (let guard = 0; guard < 20; guard++) {
      const j = await api('/v1/inspections?limit=100&after_id=' + (S.cursor || 0));
      const list = j.inspections || [];
      let top = S.cursor;
      for (const i of list) { add(i); if (i.id > top) top = i.id; }
      S.cursor = typeof j.next === 'number' ? Math.max(j.next, S.cursor) : top;
      if (!j.has_more) break;
    }
    /* queued rows are not seen again by after_id in older daemons: ask for each */
    for (const i of [...S.insp.values()].filter((x) => x.status === 'queued').slice(0, 20))
      add(await api('/v1/inspections/' + i.id));
  }
  function setLive(on, text) { const b = $('live'); b.textContent = text; b.classList.toggle('on', on); }
  async function live() {
    while (!S.stopped) {
      try { await events(); } catch (e) {
        if (e instanceof AuthError) return;
        if (e.status === 404 || e.status === 405 || e.status === 501 || e.status === 200 || e.status === undefined) {
          setLive(true, 'live (polling)');
          for (;;) {
            try { await poll(); } catch (e2) { if (e2 instanceof AuthError) return; setLive(false, 'offline'); }
            await new Promise((res) => setTimeout(res, POLL_MS));
            if (S.stopped) return;
          }
        }
      }
      setLive(false, 'reconnecting');
      await new Promise((res) => setTimeout(res, POLL_MS));
    }
  }

  /* ---- detail: image, overlay, regions ---- */
  async function detail(id) {
    const i = await api('/v1/inspections/' + id);
    $('detail-title').textContent = '#' + i.id + ' · ' + i.class + ' · ' + (i.status !== 'done' ? i.status
      : i.anomalous ? 'anomalous' : 'good') + (i.confidence != null ? ' · confidence ' + (100 * i.confidence).toFixed(1) + ' %' : '');
    $('detail-json').textContent = JSON.stringify(i, null, 2);
    const a = $('stage-image'), b = $('stage-overlay');
    a.replaceChildren(); b.replaceChildren();
    const img = el('img');
    a.append(img);
    blobUrl('/v1/inspections/' + id + '/image').then((u) => {
      if (u) img.src = u; else a.replaceChildren(el('p', { class: 'muted' }, 'original not retained'));
    });
    if (i.status === 'done') {
      b.append(setImg(el('img'), '/v1/inspections/' + id + '/heatmap.png?kind=overlay', 'overlay'));
      const regions = i.regions || [];
      if (i.width && i.height && regions.length) {
        const svg = svgEl('svg', { viewBox: `0 0 ${i.width} ${i.height}`, preserveAspectRatio: 'none' });
        regions.forEach((g, k) => {
          const [x, y, w, h] = g.bbox;
          svg.append(svgEl('rect', { x, y, width: w, height: h }));
          const t = svgEl('text', { x, y: Math.max(12, y - 3) }); t.textContent = String(k + 1); svg.append(t);
        });
        b.append(svg);
      }
    }
    $('detail').hidden = false;
  }
  $('detail-close').addEventListener('click', () => { $('detail').hidden = true; });
  $('detail').addEventListener('click', (ev) => { if (ev.target === $('detail')) $('detail').hidden = true; });

  async function start() {
    try {
      const ready = await fetch('/readyz').then((r) => r.json()).catch(() => null);
      await loadClasses();
      $('logout').hidden = !S.token;
      $('status').textContent = ready ? (ready.status + (ready.model_id ? ' · ' + ready.model_id : '')) : 'up';
      const j = await api('/v1/inspections?limit=50');
      for (const i of (j.inspections || []).slice().reverse()) add(i);
      S.cursor = S.maxId || 0;
      document.documentElement.dataset.loaded = '1';
      if (/^[0-9]+$/.test(hash.get('inspection') || '')) await detail(Number(hash.get('inspection')));
      live();
    } catch (e) {
      if (!(e instanceof AuthError)) $('status').textContent = 'error: ' + e.message;
    }
  }
  start();
})();
