from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from modelport.config import (
    PRESETS,
    Config,
    ConnectionConfig,
    GatewayConfig,
    edit_config,
    find_project_dir,
    get_value,
    global_config_path,
    load_config,
    modelport_home,
    parse_config,
    project_config_path,
    remove_connection,
    set_connection,
    set_default_model,
    set_value,
)
from modelport.errors import ConfigError
from modelport.trust import TrustStore, plugins_folder
from modelport.types import ModelPrices


@pytest.fixture
def home() -> Path:
    path = modelport_home()
    path.mkdir(parents=True)
    return path


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / ".modelport").mkdir(parents=True)
    (root / "src" / "deep").mkdir(parents=True)
    return root


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# --- locations ---------------------------------------------------------------


def test_modelport_home_follows_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MODELPORT_HOME", str(tmp_path / "elsewhere"))
    assert modelport_home() == tmp_path / "elsewhere"
    monkeypatch.delenv("MODELPORT_HOME")
    assert modelport_home() == Path.home() / ".modelport"


def test_find_project_dir_walks_up_to_the_nearest_dot_modelport(project: Path) -> None:
    assert find_project_dir(project / "src" / "deep") == project.resolve()
    assert find_project_dir(project) == project.resolve()
    assert project_config_path(project / "src") == project.resolve() / ".modelport/config.toml"


def test_find_project_dir_is_none_outside_a_project(tmp_path: Path) -> None:
    (tmp_path / "plain").mkdir()
    assert find_project_dir(tmp_path / "plain") is None
    assert project_config_path(tmp_path / "plain") is None


def test_the_global_home_is_not_mistaken_for_a_project(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # ~/.modelport sits in an ancestor of most working directories.
    monkeypatch.setenv("MODELPORT_HOME", str(tmp_path / ".modelport"))
    (tmp_path / ".modelport").mkdir()
    (tmp_path / "work").mkdir()
    assert find_project_dir(tmp_path / "work") is None


# --- loading -----------------------------------------------------------------


def test_missing_files_give_an_empty_config(tmp_path: Path) -> None:
    config = load_config(cwd=tmp_path)
    assert config == Config()
    assert config.gateway == GatewayConfig(host="127.0.0.1", port=4848)
    assert config.sources == []


def test_load_config_reads_every_section(home: Path, tmp_path: Path) -> None:
    path = write(
        home / "config.toml",
        """
default_model = "local/llama3.1:8b"
database_url = "postgresql://db/modelport"

[connections.local]
compat = "openai"
base_url = "http://localhost:11434/v1"
timeout = 30
max_retries = 0
headers = { "X-Team" = "a" }
model = "llama3.1:8b"
temperature = 0.2
max_tokens = 4096
retry_base_delay = 1
retry_max_delay = 20

[connections.local.prices."llama3.1:8b"]
input = 0.1
output = 0.2

[aliases]
fast = "local/qwen2.5-coder:7b"

[gateway]
port = 5000
key_env = "GATEWAY_KEY"

[fallbacks]
"openai/gpt-4o" = ["anthropic/claude-sonnet-4-5"]
""",
    )
    config = load_config(cwd=tmp_path)
    assert config.default_model == "local/llama3.1:8b"
    assert config.database_url == "postgresql://db/modelport"
    assert config.connections["local"] == ConnectionConfig(
        compat="openai",
        base_url="http://localhost:11434/v1",
        timeout=30.0,
        max_retries=0,
        headers={"X-Team": "a"},
        prices={"llama3.1:8b": ModelPrices(input=0.1, output=0.2)},
        model="llama3.1:8b",
        temperature=0.2,
        max_tokens=4096,
        retry_base_delay=1.0,
        retry_max_delay=20.0,
    )
    assert config.aliases == {"fast": "local/qwen2.5-coder:7b"}
    assert config.gateway == GatewayConfig(port=5000, key_env="GATEWAY_KEY")
    assert config.fallbacks == {"openai/gpt-4o": ["anthropic/claude-sonnet-4-5"]}
    assert config.sources == [path]


def test_project_entries_override_global_ones_of_the_same_name(home: Path, project: Path) -> None:
    write(
        home / "config.toml",
        """
default_model = "global/a"
database_url = "sqlite:///global.db"
[connections.shared]
compat = "openai"
base_url = "http://global/v1"
timeout = 5
[connections.only_global]
base_url = "http://g/v1"
[aliases]
a = "global/a"
b = "global/b"
[gateway]
port = 1111
key_env = "GLOBAL_KEY"
""",
    )
    write(
        project / ".modelport" / "config.toml",
        """
default_model = "project/a"
[connections.shared]
base_url = "http://project/v1"
[aliases]
b = "project/b"
c = "project/c"
[gateway]
port = 2222
""",
    )
    TrustStore(home).trust_config(project / ".modelport" / "config.toml")
    config = load_config(cwd=project / "src")
    assert config.ignored == []
    assert config.default_model == "project/a"
    assert config.database_url == "sqlite:///global.db"
    # A connection table is replaced whole: the global timeout does not leak through.
    assert config.connections["shared"] == ConnectionConfig(base_url="http://project/v1")
    assert "only_global" in config.connections
    assert config.aliases == {"a": "global/a", "b": "project/b", "c": "project/c"}
    assert config.gateway == GatewayConfig(port=2222, key_env="GLOBAL_KEY")
    assert config.sources == [home / "config.toml", project.resolve() / ".modelport/config.toml"]


def test_explicit_home_argument_wins(tmp_path: Path) -> None:
    write(tmp_path / "other" / "config.toml", 'default_model = "x/y"')
    assert load_config(home=tmp_path / "other", cwd=tmp_path).default_model == "x/y"


def test_an_explicit_home_is_not_read_twice_as_a_project(tmp_path: Path) -> None:
    home = tmp_path / ".modelport"
    write(home / "config.toml", '[aliases]\na = "x/y"')
    (tmp_path / "work").mkdir()
    config = load_config(home=home, cwd=tmp_path / "work")
    assert config.sources == [home / "config.toml"]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("default_model = ", "is not valid TOML"),
        ("defualt_model = 'a/b'", "Did you mean 'default_model'?"),
        ("[connections.local]\ntimeout = 'slow'", "connections.local.timeout"),
        ("[connections.local]\ntimeout = 0", "connections.local.timeout"),
        ("[connections.local]\nmax_retries = -1", "connections.local.max_retries"),
        ("[connections.local]\nheaders = { a = 1 }", "connections.local.headers"),
        ("[connections.local]\nprices = { m = { input = 'x' } }", "connections.local.prices"),
        ('[connections."a/b"]\ncompat = "openai"', "cannot be empty or contain '/'"),
        ("[connections.local]\ncompat = 'plugin:'", "plugin:<provider id>"),
        ("[gateway]\nprot = 1", "Did you mean 'port'?"),
        ("[connections.local]\nbase-url = 'http://x/v1'", "Did you mean 'base_url'?"),
        ("[connections.local]\ntimout = 5", "Did you mean 'timeout'?"),
        ("[gateway]\nport = 70000", "gateway.port"),
        ("[aliases]\nfast = 1", "aliases"),
        ("[fallbacks]\n'a/b' = 'c/d'", "fallbacks"),
        ("connections = 1", "connections"),
    ],
)
def test_a_bad_file_names_itself_and_the_problem(
    home: Path, tmp_path: Path, text: str, problem: str
) -> None:
    path = write(home / "config.toml", text)
    with pytest.raises(ConfigError) as caught:
        load_config(cwd=tmp_path)
    assert str(path) in str(caught.value)
    assert problem in str(caught.value)


def test_a_bad_project_file_names_the_project_file(home: Path, project: Path) -> None:
    write(home / "config.toml", 'default_model = "a/b"')
    bad = write(project / ".modelport" / "config.toml", "[gateway]\nport = 'x'")
    TrustStore(home).trust_config(bad)
    with pytest.raises(ConfigError, match="gateway.port") as caught:
        load_config(cwd=project)
    assert str(bad.resolve()) in str(caught.value)


def test_gateway_repr_hides_inline_keys() -> None:
    gateway = GatewayConfig(key="sk-gateway-secret", admin_key="sk-admin-secret")
    assert "secret" not in repr(gateway)


# --- presets -----------------------------------------------------------------


def test_presets_cover_the_well_known_connections() -> None:
    assert set(PRESETS) == {
        "openai",
        "anthropic",
        "openrouter",
        "groq",
        "deepseek",
        "gemini",
        "ollama",
        "lmstudio",
        "vllm",
        "llamacpp",
    }
    assert PRESETS["openrouter"].base_url == "https://openrouter.ai/api/v1"
    assert PRESETS["ollama"].compat == "ollama"
    assert PRESETS["anthropic"].compat == "anthropic"
    assert PRESETS["gemini"].compat == "gemini"


def test_a_preset_is_available_but_not_configured() -> None:
    config = Config()
    assert not config.is_configured("openrouter")
    openrouter = config.connection("openrouter")
    assert openrouter is not None
    assert openrouter.base_url == "https://openrouter.ai/api/v1"
    # Whether OPENROUTER_API_KEY applies depends on the URL; the router decides that.
    assert openrouter.api_key_env is None
    assert config.connection("nowhere") is None


def test_a_configured_preset_name_gets_the_preset_defaults() -> None:
    config = parse_config("[connections.openrouter]\ntimeout = 10\n")
    assert config.is_configured("openrouter")
    assert config.connection("openrouter") == ConnectionConfig(
        compat="openai", base_url="https://openrouter.ai/api/v1", timeout=10.0
    )
    own_url = parse_config("[connections.openrouter]\nbase_url = 'http://proxy/v1'\n")
    assert own_url.connection("openrouter").base_url == "http://proxy/v1"  # type: ignore[union-attr]


def test_a_preset_name_with_another_compat_is_left_alone() -> None:
    config = parse_config("[connections.groq]\ncompat = 'anthropic'\n")
    assert config.connection("groq") == ConnectionConfig(compat="anthropic")


# --- writing back ------------------------------------------------------------


def test_edit_config_creates_the_file_and_its_directory(tmp_path: Path) -> None:
    target = tmp_path / "new" / "dir" / "config.toml"
    with edit_config(target) as document:
        document["default_model"] = "a/b"
    assert parse_config(target.read_text(), target).default_model == "a/b"


def test_edit_config_defaults_to_the_global_file() -> None:
    set_default_model("local/llama3.1:8b")
    assert global_config_path().exists()
    assert load_config().default_model == "local/llama3.1:8b"
    set_default_model(None)
    assert load_config().default_model is None


def test_edits_keep_comments_and_formatting(home: Path) -> None:
    original = """# my models
default_model = "local/a"   # the usual one

[connections.local]
compat = "openai"            # ollama's OpenAI API
base_url = "http://localhost:11434/v1"
"""
    path = write(home / "config.toml", original)
    set_connection("local", {"timeout": 30})
    set_value("aliases.fast", "local/b")
    text = path.read_text()
    assert "# my models" in text
    assert '"local/a"   # the usual one' in text
    assert "# ollama's OpenAI API" in text
    config = load_config()
    assert config.connections["local"].timeout == 30
    assert config.aliases == {"fast": "local/b"}


def test_a_new_home_and_its_config_are_the_owners_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELPORT_HOME", str(tmp_path / "users" / "home"))
    home = modelport_home()
    set_connection("work", {"compat": "openai", "base_url": "http://w/v1"})
    # Created, and the missing folder above it too, for its owner alone.
    assert home.stat().st_mode & 0o777 == 0o700
    assert home.parent.stat().st_mode & 0o777 == 0o700
    assert (home / "config.toml").stat().st_mode & 0o777 == 0o600
    # A project's config is shared with its repository: it keeps the usual mode.
    project = write(tmp_path / "repo" / ".modelport" / "config.toml", "")
    os.chmod(project, 0o644)
    set_value("aliases.x", "work/m", path=project)
    assert project.stat().st_mode & 0o777 == 0o644


def test_set_connection_merges_keys_and_none_removes_one(home: Path) -> None:
    set_connection("work", {"compat": "openai", "base_url": "http://w/v1", "timeout": 5})
    set_connection("work", {"timeout": None, "api_key_env": "WORK_KEY"})
    assert load_config().connections["work"] == ConnectionConfig(
        compat="openai", base_url="http://w/v1", api_key_env="WORK_KEY"
    )


def test_set_connection_rejects_an_unaddressable_name() -> None:
    with pytest.raises(ConfigError, match="contain '/'"):
        set_connection("a/b", {"compat": "openai"})


def test_remove_connection(home: Path) -> None:
    set_connection("a", {"base_url": "http://a/v1"})
    set_connection("b", {"base_url": "http://b/v1"})
    assert remove_connection("a") is True
    assert remove_connection("a") is False
    assert list(load_config().connections) == ["b"]


def test_remove_connection_without_any_file() -> None:
    assert remove_connection("nothing") is False


def test_set_value_and_get_value_by_dotted_key(home: Path) -> None:
    set_value("gateway.port", 5050)
    assert get_value("gateway.port") == 5050
    assert get_value("gateway.host") is None
    assert get_value("no.such.key") is None
    set_value("gateway.port", None)
    assert get_value("gateway.port") is None
    set_value("missing.table", None)  # removing what isn't there is fine


def test_get_value_merges_project_over_global(
    home: Path, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(home / "config.toml", "[gateway]\nport = 1\nhost = '0.0.0.0'\n")
    local = write(project / ".modelport" / "config.toml", "[gateway]\nport = 2\n")
    monkeypatch.chdir(project)
    assert get_value("gateway.port") == 1  # an untrusted project cannot set it
    TrustStore(home).trust_config(local)
    assert get_value("gateway.port") == 2
    assert get_value("gateway.host") == "0.0.0.0"
    assert get_value("gateway.port", path=home / "config.toml") == 1
    assert get_value("gateway.port", path=local) == 2


def test_an_edit_that_would_break_the_file_writes_nothing(home: Path) -> None:
    path = write(home / "config.toml", 'default_model = "a/b"\n')
    with pytest.raises(ConfigError, match="gateway.port"):
        set_value("gateway.port", "not a number")
    with pytest.raises(ConfigError, match="Did you mean"):
        set_value("defualt_model", "x/y")
    assert path.read_text() == 'default_model = "a/b"\n'


def test_an_exception_inside_edit_config_writes_nothing(home: Path) -> None:
    path = write(home / "config.toml", 'default_model = "a/b"\n')
    with pytest.raises(RuntimeError), edit_config() as document:
        document["default_model"] = "c/d"
        raise RuntimeError("changed my mind")
    assert path.read_text() == 'default_model = "a/b"\n'


def test_set_value_refuses_to_descend_into_a_value(home: Path) -> None:
    set_default_model("a/b")
    with pytest.raises(ConfigError, match="is a value, not a table"):
        set_value("default_model.x", 1)
    with pytest.raises(ConfigError, match="Not a valid key"):
        set_value("gateway..port", 1)


def test_saving_keeps_an_existing_files_mode(home: Path) -> None:
    path = write(home / "config.toml", 'default_model = "a/b"\n')
    path.chmod(0o640)
    set_default_model("c/d")
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert not [p for p in home.iterdir() if p.name.endswith(".tmp")]


def test_editing_an_invalid_toml_file_says_so(home: Path) -> None:
    write(home / "config.toml", "default_model = ")
    with pytest.raises(ConfigError, match="not valid TOML"):
        set_default_model("a/b")


def test_plugin_config_field_env_keys_are_options_not_typos(home: Path, tmp_path: Path) -> None:
    write(
        home / "config.toml",
        '[connections.acme]\ncompat = "plugin:acme"\napiKey_env = "ACME_KEY"\nregion = "eu"',
    )
    config = load_config(cwd=tmp_path)
    assert config.connections["acme"].options == {"apiKey_env": "ACME_KEY", "region": "eu"}


# --- an untrusted project's config ----------------------------------------------


HOSTILE = """
default_model = "work/from-project"
database_url = "postgresql://attacker.example/loot"
[aliases]
fast = "work/fast"
[connections.work]
compat = "openai"
base_url = "{url}"
api_key_env = "USER_SECRET"
headers = {{ x-exfil = "1" }}
[connections.openai]
base_url = "{url}"
[fallbacks]
"work/a" = ["openai/b"]
[gateway]
host = "0.0.0.0"
key = "project-key"
"""


def test_an_untrusted_project_sets_only_the_default_model_and_aliases(
    home: Path, project: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write(home / "config.toml", "[connections.work]\nbase_url = 'http://user/v1'\n")
    path = write(project / ".modelport" / "config.toml", HOSTILE.format(url="http://evil/v1"))
    config = load_config(cwd=project / "src")
    assert config.default_model == "work/from-project"
    assert config.aliases == {"fast": "work/fast"}
    assert config.connections == {"work": ConnectionConfig(base_url="http://user/v1")}
    assert config.connection("openai") == ConnectionConfig(
        compat="openai", base_url="https://api.openai.com/v1"
    )
    assert config.fallbacks == {} and config.database_url is None
    assert config.gateway == GatewayConfig()
    assert config.sources == [home / "config.toml", path.resolve()]
    [ignored] = config.ignored
    assert ignored.path == path.resolve() and ignored.project == project.resolve()
    assert ignored.keys == [
        "database_url",
        "[connections.work]",
        "[connections.openai]",
        "[fallbacks]",
        "[gateway]",
    ]
    assert ignored.fix == f"modelport plugins trust {project.resolve()}"

    load_config(cwd=project)  # loading again does not warn again
    [record] = [r for r in caplog.records if r.name == "modelport.config"]
    assert record.levelname == "WARNING"
    assert str(path.resolve()) in record.getMessage()
    assert f"modelport plugins trust {project.resolve()}" in record.getMessage()


def test_a_project_setting_only_what_it_may_needs_no_trust(
    home: Path, project: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write(project / ".modelport" / "config.toml", 'default_model = "a/b"\n[aliases]\nx = "a/c"\n')
    config = load_config(cwd=project)
    assert (config.default_model, config.aliases, config.ignored) == ("a/b", {"x": "a/c"}, [])
    assert not [r for r in caplog.records if r.name == "modelport.config"]


def test_trusting_the_project_folder_applies_its_config_until_it_changes(
    home: Path, project: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write(project / ".modelport" / "config.toml", HOSTILE.format(url="http://proj/v1"))
    # `modelport plugins trust PROJECT` trusts .modelport/plugins and the config beside it.
    TrustStore(home).trust(plugins_folder(project))
    config = load_config(cwd=project)
    assert config.ignored == []
    assert config.connections["work"].base_url == "http://proj/v1"
    assert config.database_url == "postgresql://attacker.example/loot"
    assert config.gateway.host == "0.0.0.0"

    path.write_text(path.read_text().replace("http://proj/v1", "http://elsewhere/v1"))
    changed = load_config(cwd=project)
    assert "work" not in changed.connections and changed.database_url is None
    assert changed.ignored[0].path == path.resolve()
    assert any("Ignoring" in r.getMessage() for r in caplog.records)

    TrustStore(home).trust(plugins_folder(project))
    assert load_config(cwd=project).connections["work"].base_url == "http://elsewhere/v1"
    assert TrustStore(home).revoke(plugins_folder(project))
    assert load_config(cwd=project).ignored != []


def test_an_untrusted_project_cannot_redirect_a_connection_or_read_keys(
    home: Path, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    from keyring.backends import null

    from modelport.auth.keys import set_key
    from modelport.routing import Router
    from modelport.testing import FakeUpstream, Reply
    from modelport.types import ChatRequest, Message

    monkeypatch.setenv("USER_SECRET", "sk-user-secret-env")
    set_key("work", "sk-user-stored", backend=null.Keyring())
    set_key("openai", "sk-user-openai", backend=null.Keyring())
    reply = Reply.fixture("openai/chat-stream-text-include-usage.sse")
    with FakeUpstream() as user, FakeUpstream() as evil:
        user.route("POST", "/v1/chat/completions", reply, reply)
        evil.route("POST", "/v1/chat/completions", reply, reply)
        write(home / "config.toml", f"[connections.work]\nbase_url = '{user.url}/v1'\n")
        path = write(project / ".modelport" / "config.toml", HOSTILE.format(url=f"{evil.url}/v1"))

        async def call(model: str) -> None:
            router = Router(load_config(cwd=project))
            try:
                request = ChatRequest(model=model, messages=[Message(role="user", content="hi")])
                await router.complete(request)
                # The project's URL never even gets to be the OpenAI key's destination.
                assert router.settings_for("openai").base_url == "https://api.openai.com/v1"
            finally:
                await router.aclose()

        asyncio.run(call("work/gpt-4o-mini"))
        asyncio.run(call("fast"))  # its alias still applies, and leads to the user's connection
        assert evil.requests == []
        assert [r.headers["authorization"] for r in user.requests] == ["Bearer sk-user-stored"] * 2
        assert all("x-exfil" not in r.headers for r in user.requests)

        # Trusted, the project's table applies as written (its key variable included).
        TrustStore(home).trust_config(path)
        router = Router(load_config(cwd=project))
        settings = router.settings_for("work")
        assert settings.base_url == f"{evil.url}/v1" and settings.headers == {"x-exfil": "1"}


# --- write failures and base URLs ---------------------------------------------------------


def test_a_write_failure_is_a_config_error_naming_the_file(tmp_path: Path) -> None:
    from modelport.config import set_value

    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where a folder should be")
    target = blocker / "config.toml"
    with pytest.raises(ConfigError, match=f"Cannot (read|write) {target}") as caught:
        set_value("default_model", "local/m", path=target)
    assert isinstance(caught.value.__cause__, OSError)


def test_a_write_failure_in_an_existing_folder_leaves_no_temporary_file(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    from modelport.config import set_value

    def refuse(*args: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(ConfigError, match="Cannot write .*config.toml: Permission denied"):
        set_value("default_model", "local/m")
    assert list(home.iterdir()) == []


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://[::1/v1", "not a valid URL"),
        ("localhost:8000/v1", "must start with http:// or https://"),
        ("http:///v1", "no host name"),
        ("http://user:s3cret@host/v1", "user name or password"),
        ("http://host:port/v1", "not a valid URL"),
    ],
)
def test_a_bad_base_url_is_refused_when_the_file_is_read(
    home: Path, url: str, problem: str
) -> None:
    (home / "config.toml").write_text(f"[connections.work]\nbase_url = '{url}'\n")
    with pytest.raises(ConfigError, match=problem) as caught:
        load_config()
    message = str(caught.value)
    assert "[connections.work]" in message and "config.toml" in message
    assert "s3cret" not in message
