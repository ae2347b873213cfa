"""`python -m pipelines.sandbox.facebook`: serve the seeded ad accounts until interrupted."""

import json
import time

from pipelines.sandbox.facebook import FacebookServer, build_world

if __name__ == "__main__":
    with FacebookServer(build_world()) as server:
        print(json.dumps({"url": server.url, "accounts": {a.id: a.token for a in server.world.accounts}}, indent=2))
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
