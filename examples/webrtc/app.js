// The browser half of a voice session, as OpenAI's WebRTC guide has it, with one change: the offer
// goes to this project's session endpoint instead of https://api.openai.com/v1/realtime/calls, so
// no key (not even an ephemeral one) reaches the page. The answer and the call id come back as
// OpenAI gives them (201, application/sdp, Location: /v1/realtime/calls/<call_id>).
const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
$('endpoint').value = params.get('endpoint') ?? '';
$('profile').value = params.get('profile') ?? '';

/** What the page did, for people (the status line) and for tests (window.demo). */
const demo = {
  state: 'idle',
  callId: undefined,
  record: undefined,
  transcript: [],
  error: undefined,
};
window.demo = demo;
let pc;
let poll;

function status(state, text) {
  demo.state = state;
  $('status').dataset.state = state;
  $('status').textContent = text;
}

function render() {
  $('transcript').replaceChildren(
    ...demo.transcript.map((line) => {
      const p = document.createElement('p');
      p.className = line.role;
      p.textContent = line.text;
      return p;
    }),
  );
}

async function start() {
  $('start').disabled = true;
  try {
    status('media', 'Asking for the microphone…');
    const mic = await navigator.mediaDevices.getUserMedia({ audio: true });
    pc = new RTCPeerConnection();
    const speaker = new Audio();
    speaker.autoplay = true;
    pc.ontrack = (event) => {
      speaker.srcObject = event.streams[0];
    };
    pc.addTrack(mic.getAudioTracks()[0], mic);
    // The data channel carries the session's events to the page (transcripts, for one).
    const events = pc.createDataChannel('oai-events');
    events.onmessage = (message) => onServerEvent(JSON.parse(message.data));
    await pc.setLocalDescription(await pc.createOffer());

    status('offer', 'Sending the offer…');
    const endpoint = $('endpoint').value || new URL('session', location.href).href;
    const url = new URL(endpoint, location.href);
    if ($('profile').value) url.searchParams.set('profile', $('profile').value);
    const headers = { 'content-type': 'application/sdp' };
    if ($('token').value) headers.authorization = `Bearer ${$('token').value}`;
    const response = await fetch(url, { method: 'POST', headers, body: pc.localDescription.sdp });
    if (response.status !== 201) {
      const body = await response.json().catch(() => ({}));
      throw new Error(`${response.status} ${body.error?.code ?? ''}: ${body.error?.message ?? ''}`);
    }
    demo.callId =
      response.headers.get('x-call-id') ?? response.headers.get('location')?.split('/').pop();
    await pc.setRemoteDescription({ type: 'answer', sdp: await response.text() });
    status('answer-applied', `Connected: call ${demo.callId}. Waiting for the agent…`);
    $('stop').disabled = false;
    poll = setInterval(pollRecord, 500);
  } catch (error) {
    demo.error = String(error);
    status('error', `Failed: ${error.message ?? error}`);
    $('start').disabled = false;
  }
}

/** Server events on the data channel (real OpenAI): the transcript as it happens. */
function onServerEvent(event) {
  if (event.type === 'conversation.item.input_audio_transcription.completed')
    demo.transcript.push({ role: 'caller', text: event.transcript });
  else if (event.type === 'response.output_audio_transcript.done')
    demo.transcript.push({ role: 'assistant', text: event.transcript });
  else return;
  render();
}

/**
 * The call record (local mode serves GET /calls/{id} beside the endpoint; a deployed stack does
 * not, and the data channel's events carry the transcript there instead).
 */
async function pollRecord() {
  if (!demo.callId) return;
  const base = new URL(
    $('endpoint').value || new URL('session', location.href).href,
    location.href,
  );
  const response = await fetch(new URL(`calls/${demo.callId}`, base)).catch(() => undefined);
  if (!response?.ok) {
    clearInterval(poll);
    return;
  }
  const view = await response.json();
  demo.record = view.record;
  if (view.record.attachedAt && demo.state === 'answer-applied')
    status('attached', `Connected: call ${demo.callId}, the agent is on (sideband attached).`);
  if (view.record.status === 'ended') {
    status('ended', `Call ended: ${view.record.endReason ?? 'done'}.`);
    clearInterval(poll);
  }
  if (view.transcript.length >= demo.transcript.length) {
    demo.transcript = view.transcript;
    render();
  }
}

function stop() {
  pc?.close();
  clearInterval(poll);
  status('ended', 'Hung up.');
  $('stop').disabled = true;
  $('start').disabled = false;
}

$('start').onclick = start;
$('stop').onclick = stop;
