/* The usage texts: `switchyard --help` and `switchyard passwd --help`. */

export const HELP = `Usage: switchyard [command] [options]

Commands:
  start                 start the broker (the default command)
  check                 validate the configuration and every rule file; print every problem; exit 0 or 1
  rule test <file>      run one message through a rule file in the real sandbox; print its outputs as JSON
  rule test --all       run every rules/<name>.test.json fixture against rules/<name>.js (or .ts)
  rule new <name>       write rules/<name>.js (--ts: .ts) and a fixture that pass 'rule test --all' (--topic <filter> required)
  passwd ...            manage a Mosquitto-compatible password file (see 'switchyard passwd --help')
  help [passwd]         show this help, or the passwd command's

Options:
  -c, --config <file>   JSON config file (default: ./switchyard.json if it exists, else built-in defaults)
      --pid-file <file> start: write the broker's pid there once it listens; removed on exit
  -h, --help            show this help
  -v, --version         print the version
      --pretty          readable log lines instead of JSON (the default on a terminal)

rule test options:
  --topic <topic>       the input message's topic (required)
  --payload <text>      the payload as text, or
  --payload-hex <hex>   the payload as hex bytes, for binary devices
  --client-id <id>      msg.clientId (default: null)
  --username <name>     msg.username (default: null)
  --qos <0|1|2>         msg.qos (default: 0)
  --property <k>=<v>    an MQTT 5 property in msg.properties; repeatable:
                          user.<name>=<value>   a user property (repeat a name for several values)
                          contentType, responseTopic, messageExpiryInterval (seconds),
                          payloadFormatIndicator (true|false),
                          correlationData (text, as UTF-8) or correlationDataHex (bytes)

Examples:
  switchyard                                  # tcp 1883, tls 8883, wss 8084 on 127.0.0.1
  switchyard start --config switchyard.json
  switchyard check --config switchyard.json
  switchyard rule test rules/tb-uplink.js --topic tb/mqtt-integration-tutorial/sensors/SN-001/temperature --payload '{"value":25.1}'
  switchyard rule test rules/lora-decoder.js --topic lora/0001/up --payload-hex 00eb370ce4
  switchyard rule new greenhouse --topic 'greenhouse/+/climate' --ts
  switchyard rule test rules/mqtt5-rpc.js --topic devices/SN-001/rpc/call --payload '{"params":"42"}' \
    --property responseTopic=app/replies --property correlationData=req-1 --property user.origin=console

Docs: docs/configuration.md (every option), docs/rules.md (rule files), docs/errors.md (error codes).`

export const PASSWD_HELP = `Usage: switchyard passwd [-c] <file> <user>          prompt for the password (twice, no echo)
       switchyard passwd [-c] -b <file> <user> <password>
       switchyard passwd -D <file> <user>
       switchyard passwd -U <file>

Writes the format of mosquitto_passwd 2.0 ($7$, PBKDF2-SHA512), which Mosquitto reads too.
 -b : batch mode: the password is on the command line
 -c : create a new file, replacing an existing one
 -D : delete the user
 -U : hash every plain-text user:password line of the file in place`
