// Refreshes the status table from /api/status every second.
async function refresh() {
  try {
    const r = await fetch('/api/status');
    const s = await r.json();
    document.getElementById('uptime').textContent = s.uptime;
    document.getElementById('requests').textContent = s.requests;
  } catch (err) {
    document.getElementById('uptime').textContent = 'offline';
  }
}
refresh();
setInterval(refresh, 1000);
