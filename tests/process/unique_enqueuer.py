"""One of several processes enqueueing the same unique keys at once; prints the ids it got back."""

import asyncio
import json
import os
import sys

import fastjobs

app = fastjobs.App(os.environ["FASTJOBS_TEST_URL"], prefix=os.environ["FASTJOBS_TEST_PREFIX"])


@app.task(name="sync_account")
async def sync_account(account: int) -> None:
    return None


async def main(keys: int, start_at: float) -> None:
    # Start together, so the enqueues really race.
    await asyncio.sleep(max(0.0, start_at - __import__("time").time()))
    ids: dict[str, list[str]] = {}
    for round_ in range(5):
        for k in range(keys):
            handle = await sync_account.options(unique_key=f"acct:{k}").enqueue(k)
            ids.setdefault(f"acct:{k}", []).append(handle.id)
    await app.close()
    print(json.dumps(ids))


asyncio.run(main(int(sys.argv[1]), float(sys.argv[2])))
