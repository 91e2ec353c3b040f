"""``config.toml``: where it lives, what it may hold, model addresses, and writing it back.

The global file is ``MODELPORT_HOME/config.toml`` (``~/.modelport`` by
default). A project — the working directory or its nearest ancestor holding
``.modelport/`` — may add ``.modelport/config.toml``; its entries override the
global ones of the same name:

* ``[connections.<name>]`` tables replace the global table of that name whole;
* ``[aliases]``, ``[fallbacks]`` and ``[cache]`` merge key by key (an alias
  written as a table is a model group: several deployments behind one name);
* scalars (``default_model``, ``database_url``, ``redis_url``) and the keys of ``[gateway]``
  override one by one.

A project's file comes from a checked-out repository, so until the user trusts
the project folder (``modelport plugins trust``, the same trust as its
plugins, granted to the file's exact bytes) it may set only ``default_model``
and ``[aliases]``: its ``[connections]``, ``[fallbacks]``, ``database_url`` and
``[gateway]`` are left out (:attr:`Config.ignored`), with one logged warning
naming the file and the command. Otherwise a repository could point
``[connections.openai]`` at its own server and receive the user's key.

Files are validated here, at the edge, and a bad one raises
:class:`~modelport.errors.ConfigError` naming the file and the problem.

Well-known connection names have :data:`PRESETS`: ``openrouter/<model>`` works
with no config beyond a key, and a configured ``[connections.openrouter]``
without ``base_url`` gets OpenRouter's. :attr:`Config.connections` holds only
what the user *configured*; :meth:`Config.connection` fills in the preset.
"""

from modelport.config._addresses import (
    default_model,
    resolve_address,
    resolve_target,
    split_address,
)
from modelport.config._cache_settings import CacheConfig
from modelport.config._groups import STRATEGIES, Deployment, ModelGroup
from modelport.config._load import (
    CONFIG_FILE,
    PRESET_KEY_FALLBACKS,
    PRESETS,
    PROJECT_DIR,
    Config,
    ConnectionConfig,
    GatewayConfig,
    IgnoredSettings,
    OAuthConfig,
    check_base_url,
    ensure_private_dir,
    find_project_dir,
    global_config_path,
    load_config,
    modelport_home,
    parse_config,
    project_config_path,
)
from modelport.config._oauth import parse_oauth
from modelport.config._write import (
    edit_config,
    get_value,
    remove_connection,
    set_connection,
    set_default_model,
    set_value,
)

__all__ = [
    "CONFIG_FILE",
    "PRESETS",
    "PRESET_KEY_FALLBACKS",
    "PROJECT_DIR",
    "STRATEGIES",
    "CacheConfig",
    "Config",
    "ConnectionConfig",
    "Deployment",
    "GatewayConfig",
    "IgnoredSettings",
    "ModelGroup",
    "OAuthConfig",
    "check_base_url",
    "default_model",
    "edit_config",
    "ensure_private_dir",
    "find_project_dir",
    "get_value",
    "global_config_path",
    "load_config",
    "modelport_home",
    "parse_config",
    "parse_oauth",
    "project_config_path",
    "remove_connection",
    "resolve_address",
    "resolve_target",
    "set_connection",
    "set_default_model",
    "set_value",
    "split_address",
]
