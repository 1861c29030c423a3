// A Matrix client in "exclude insecure devices" mode, driven by the tests over stdin/stdout.
//
// matrix-js-sdk with its Rust crypto (matrix-sdk-crypto compiled to WebAssembly), the same
// crypto Element uses, set to OnlySignedDevicesIsolationMode: room keys go only to devices
// cross-signed by their owners, and messages from other devices fail to decrypt
// (sender trust requirement "cross-signed or legacy").
//
// Environment: HOMESERVER, USER_ID, PASSWORD, DEVICE_ID, and MATRIX_JS_SDK: the file URL of
// the installed SDK's lib/ folder (scripts/install-strict-js-client.sh installs it).
// stdin: one JSON request a line, {"id": n, "op": ..., ...}; stdout: one JSON line each for
// replies ({"id": n, "ok": ...}) and for what the client sees ({"event": ...}).
// The SDK's own logging goes to stderr.

import readline from "node:readline";

// Everything the SDK prints goes to stderr: stdout carries only the protocol.
for (const level of ["log", "info", "debug", "trace", "warn"]) console[level] = console.error;

const sdk = await import(`${process.env.MATRIX_JS_SDK}/index.js`);
const { OnlySignedDevicesIsolationMode } = await import(`${process.env.MATRIX_JS_SDK}/crypto-api/index.js`);
const { ClientEvent } = sdk;

function emit(message) {
    process.stdout.write(JSON.stringify(message) + "\n");
}

const { HOMESERVER, USER_ID, PASSWORD, DEVICE_ID } = process.env;

async function logIn() {
    const response = await fetch(`${HOMESERVER}/_matrix/client/v3/login`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({
            type: "m.login.password",
            identifier: { type: "m.id.user", user: USER_ID },
            password: PASSWORD,
            device_id: DEVICE_ID,
            initial_device_display_name: "strict js client",
        }),
    });
    if (!response.ok) throw new Error(`login failed: ${response.status} ${await response.text()}`);
    return await response.json();
}

const login = await logIn();
const client = sdk.createClient({
    baseUrl: HOMESERVER,
    userId: login.user_id,
    deviceId: login.device_id,
    accessToken: login.access_token,
});
await client.initRustCrypto({ useIndexedDB: false });
const crypto = client.getCrypto();
crypto.setDeviceIsolationMode(new OnlySignedDevicesIsolationMode());

async function report(event) {
    const type = event.getType();
    if (type !== "m.room.message" && !event.isDecryptionFailure()) return;
    const base = {
        room: event.getRoomId(),
        event_id: event.getId(),
        sender: event.getSender(),
        encrypted: event.isEncrypted(),
    };
    if (event.isDecryptionFailure()) {
        emit({ event: "undecryptable", code: event.decryptionFailureReason, ...base });
        return;
    }
    let shield = null;
    if (event.isEncrypted()) {
        const info = await crypto.getEncryptionInfoForEvent(event);
        shield = info ? { colour: info.shieldColour, reason: info.shieldReason } : null;
    }
    emit({ event: "message", body: event.getContent().body, shield, ...base });
}

client.on(ClientEvent.Event, (event) => {
    if (!event.isEncrypted()) report(event).catch((e) => console.error(e));
});
client.on("Event.decrypted", (event) => {
    report(event).catch((e) => console.error(e));
});
client.on("RoomMember.membership", (event, member) => {
    if (member.userId === login.user_id && member.membership === "invite") {
        emit({ event: "invite", room: member.roomId, sender: event.getSender() });
    }
});

async function untilJoinedAndEncrypted(roomId, encrypted) {
    for (let tries = 0; tries < 400; tries++) {
        const room = client.getRoom(roomId);
        if (room && room.getMyMembership() === "join") {
            if (!encrypted || (await crypto.isEncryptionEnabledInRoom(roomId))) return;
        }
        await new Promise((resolve) => setTimeout(resolve, 50));
    }
    throw new Error(`room ${roomId} not joined${encrypted ? " and encrypted" : ""} in time`);
}

const operations = {
    async create_room({ invite, encrypted, is_direct }) {
        const initial_state = encrypted
            ? [{ type: "m.room.encryption", state_key: "", content: { algorithm: "m.megolm.v1.aes-sha2" } }]
            : [];
        const { room_id } = await client.createRoom({ invite, is_direct, initial_state });
        await untilJoinedAndEncrypted(room_id, encrypted);
        return room_id;
    },
    async join({ room, encrypted }) {
        await client.joinRoom(room);
        await untilJoinedAndEncrypted(room, encrypted);
        return room;
    },
    async send({ room, body }) {
        if (!(await crypto.isEncryptionEnabledInRoom(room))) throw new Error(`${room} is not encrypted`);
        const { event_id } = await client.sendTextMessage(room, body);
        return event_id;
    },
    async whoami() {
        return { user_id: login.user_id, device_id: login.device_id };
    },
};

// In this mode the Rust crypto sends only from an account whose own cross-signing is set
// up, as Element's would be: make the client's identity once its device keys are up.
async function setUpOwnCrossSigning() {
    await crypto.bootstrapCrossSigning({
        authUploadDeviceSigningKeys: async (makeRequest) => {
            await makeRequest({
                type: "m.login.password",
                identifier: { type: "m.id.user", user: login.user_id },
                password: PASSWORD,
            });
        },
    });
}

let prepared = false;
client.on(ClientEvent.Sync, (state) => {
    if (state !== "PREPARED" || prepared) return;
    prepared = true;
    setUpOwnCrossSigning().then(
        () => emit({ event: "ready", user_id: login.user_id, device_id: login.device_id }),
        (error) => emit({ event: "failed", error: String(error && error.stack ? error.stack : error) }),
    );
});
await client.startClient({ initialSyncLimit: 20 });

const lines = readline.createInterface({ input: process.stdin });
lines.on("line", async (line) => {
    const request = JSON.parse(line);
    try {
        const result = await operations[request.op](request);
        emit({ id: request.id, ok: true, result });
    } catch (error) {
        emit({ id: request.id, ok: false, error: String(error && error.stack ? error.stack : error) });
    }
});
lines.on("close", () => {
    client.stopClient();
    process.exit(0);
});
