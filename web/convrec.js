// What the pages share: credentials, the web API, the event stream, WHIP/WHEP sessions, and a
// small DOM helper. Plain ES modules, no build step, nothing fetched from elsewhere.

// The credentials of this tab: from the URL fragment (never sent to servers) or the tab's
// session storage. `token` is a participant token or an API key.
export function credentials() {
  const params = new URLSearchParams(location.hash.slice(1));
  for (const key of ['token', 'conversation', 'account']) {
    const value = params.get(key);
    if (value) sessionStorage.setItem(`convrec.${key}`, value);
  }
  // The secret leaves the address bar (bookmarks, shared screens, history).
  if (params.has('token')) history.replaceState(null, '', location.pathname);
  return {
    token: sessionStorage.getItem('convrec.token'),
    conversation: sessionStorage.getItem('convrec.conversation'),
    account: sessionStorage.getItem('convrec.account'),
  };
}

// An API error: the server's `{code, message}`.
export class ApiError extends Error {
  constructor(status, body) {
    super(body && body.message ? body.message : `HTTP ${status}`);
    this.status = status;
    this.code = body && body.code;
    this.details = body && body.details;
  }
}

// Calls the web API; resolves to the JSON answer (null for 204), rejects with an ApiError.
export async function api(token, method, path, body) {
  const headers = { Authorization: `Bearer ${token}` };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  const json = text ? JSON.parse(text) : null;
  if (!response.ok) throw new ApiError(response.status, json);
  return json;
}

// A peer connection configured as the deployment says: its TURN relays, with credentials for
// this caller, and whether media may take no other path (`iceTransportPolicy: 'relay'`).
export async function peerConnection(token, conversation) {
  const ice = await api(token, 'GET', `/v1/conversations/${conversation}/iceServers`);
  return new RTCPeerConnection(ice);
}

// Calls `onEvent` with each server-sent event of a conversation (fetch, since EventSource
// cannot send a header), reconnecting after a dropped stream; resolves never.
export async function followEvents(token, conversation, onEvent, signal) {
  for (;;) {
    try {
      const response = await fetch(`/v1/conversations/${conversation}/events`, {
        headers: { Authorization: `Bearer ${token}` },
        signal,
      });
      if (!response.ok) throw new ApiError(response.status, await response.json());
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end;
        while ((end = buffer.indexOf('\n')) >= 0) {
          const line = buffer.slice(0, end).trim();
          buffer = buffer.slice(end + 1);
          if (line.startsWith('data:')) onEvent(JSON.parse(line.slice(5)));
        }
      }
    } catch (e) {
      if (signal && signal.aborted) return;
      if (e instanceof ApiError && e.status < 500) throw e;
    }
    await new Promise((done) => setTimeout(done, 1000));
  }
}

// Sends an SDP offer with every candidate (no trickle) to a WHIP or WHEP URL; returns the
// session's `Location`.
export async function exchange(token, pc, url) {
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise((done) => {
    if (pc.iceGatheringState === 'complete') return done();
    pc.addEventListener('icegatheringstatechange', () => pc.iceGatheringState === 'complete' && done());
    setTimeout(done, 3000);
  });
  const response = await fetch(url, {
    method: 'POST',
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/sdp' },
    body: pc.localDescription.sdp,
  });
  const answer = await response.text();
  if (response.status !== 201) throw new ApiError(response.status, JSON.parse(answer || 'null'));
  await pc.setRemoteDescription({ type: 'answer', sdp: answer });
  return response.headers.get('Location');
}

// Puts H.264 with packetization mode 1 first among a video transceiver's codecs: convrec
// records H.264.
export function preferH264(transceiver) {
  const codecs = RTCRtpSender.getCapabilities('video').codecs;
  const h264 = codecs.filter((c) => c.mimeType === 'video/H264' && /packetization-mode=1/.test(c.sdpFmtpLine || ''));
  transceiver.setCodecPreferences([...h264, ...codecs.filter((c) => !h264.includes(c))]);
}

// `h('p', {class: 'x'}, 'text', child)`: an element with attributes and children.
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith('on')) element.addEventListener(name.slice(2), value);
    else element.setAttribute(name, value === true ? '' : value);
  }
  element.append(...children.filter((c) => c !== null && c !== undefined));
  return element;
}

// A time for people: local date and time to the second.
export function when(ms) {
  return ms ? new Date(ms).toLocaleString() : '—';
}

// A size for people.
export function bytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

// A duration for people, from milliseconds.
export function duration(ms) {
  if (ms === null || ms === undefined) return '—';
  const s = Math.round(ms / 1000);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

// Shows an error where the page keeps its alerts (role="alert"), never swallowing it.
export function showError(error) {
  console.error(error);
  const alerts = document.getElementById('alerts');
  const text = error.code ? `${error.message} (${error.code})` : error.message || String(error);
  alerts.append(h('p', { class: 'error' }, text));
  window.convrec.errors.push(text);
}
