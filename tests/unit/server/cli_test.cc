#include "server/cli.h"

#include <gtest/gtest.h>

#include <initializer_list>
#include <string>
#include <vector>

namespace sipwake::server {
namespace {

using transport::Protocol;

CommandLine parse(std::initializer_list<const char*> args) {
  std::vector<const char*> argv{"sipwake"};
  argv.insert(argv.end(), args.begin(), args.end());
  return parseCommandLine(static_cast<int>(argv.size()), argv.data());
}

TEST(ListenSpecTest, Valid) {
  auto l = parseListenSpec("udp:127.0.0.1:5060");
  ASSERT_TRUE(l.isOk()) << l.status().message();
  EXPECT_EQ(l->protocol, Protocol::kUdp);
  EXPECT_EQ(l->address, "127.0.0.1");
  EXPECT_EQ(l->port, 5060);

  l = parseListenSpec("TCP:[::1]:5070");
  ASSERT_TRUE(l.isOk()) << l.status().message();
  EXPECT_EQ(l->protocol, Protocol::kTcp);
  EXPECT_EQ(l->address, "::1");
  EXPECT_EQ(l->port, 5070);
  EXPECT_EQ(l->toString(), "tcp:[::1]:5070");

  l = parseListenSpec("tls:0.0.0.0:65535");
  ASSERT_TRUE(l.isOk());
  EXPECT_EQ(l->protocol, Protocol::kTls);
  EXPECT_EQ(l->port, 65535);
}

TEST(ListenSpecTest, Invalid) {
  for (const char* bad : {"", "udp", "udp:", "udp:127.0.0.1", "udp:127.0.0.1:", "sctp:1.2.3.4:5",
                          "udp:127.0.0.1:0", "udp:127.0.0.1:65536", "udp:127.0.0.1:50x",
                          "udp:localhost:5060", "udp:::1:5060", "tcp:[::1:5060", "tcp:[::1]5060",
                          "tcp:[127.0.0.1]:5060", "udp:1.2.3.4:999999", "udp:300.1.1.1:5060"}) {
    auto l = parseListenSpec(bad);
    EXPECT_FALSE(l.isOk()) << bad;
    if (!l.isOk()) {
      EXPECT_NE(l.status().message().find("--listen"), std::string::npos);
      EXPECT_NE(l.status().message().find("expected udp:IP:PORT"), std::string::npos);
    }
  }
  EXPECT_NE(parseListenSpec("udp:::1:5060").status().message().find("need brackets"),
            std::string::npos);
}

TEST(CommandLineTest, NoArgumentsRuns) {
  CommandLine c = parse({});
  EXPECT_EQ(c.action, CommandLine::Action::kRun);
  EXPECT_FALSE(c.config_path.has_value());
  EXPECT_TRUE(c.listen.empty());
}

TEST(CommandLineTest, ConfigAndRepeatedListen) {
  CommandLine c = parse({"--config", "x.toml", "--listen", "udp:127.0.0.1:5080", "--listen",
                         "tls:[::1]:5081", "--log-level", "debug"});
  ASSERT_EQ(c.action, CommandLine::Action::kRun) << c.output;
  EXPECT_EQ(c.config_path, "x.toml");
  ASSERT_EQ(c.listen.size(), 2u);
  EXPECT_EQ(c.listen[0].toString(), "udp:127.0.0.1:5080");
  EXPECT_EQ(c.listen[1].toString(), "tls:[::1]:5081");
  EXPECT_EQ(c.log_level, "debug");

  Config cfg = defaultConfig();
  applyOverrides(c, cfg);
  EXPECT_EQ(cfg.listeners, c.listen);
  EXPECT_EQ(cfg.log_level, "debug");
}

TEST(CommandLineTest, BadListenIsUsageError) {
  CommandLine c = parse({"--listen", "udp:nowhere:5060"});
  EXPECT_EQ(c.action, CommandLine::Action::kExit);
  EXPECT_EQ(c.exit_code, 2);
  EXPECT_TRUE(c.output_is_error);
  EXPECT_NE(c.output.find("udp:nowhere:5060"), std::string::npos);
}

TEST(CommandLineTest, HelpAndVersion) {
  CommandLine h = parse({"--help"});
  EXPECT_EQ(h.action, CommandLine::Action::kExit);
  EXPECT_EQ(h.exit_code, 0);
  EXPECT_NE(h.output.find("--listen"), std::string::npos);
  EXPECT_NE(h.output.find("check-config"), std::string::npos);

  CommandLine v = parse({"--version"});
  EXPECT_EQ(v.action, CommandLine::Action::kExit);
  EXPECT_EQ(v.exit_code, 0);
  EXPECT_EQ(v.output, "sipwake " + std::string(versionString()) + "\n");
}

TEST(CommandLineTest, CheckConfig) {
  CommandLine c = parse({"check-config", "a.toml"});
  EXPECT_EQ(c.action, CommandLine::Action::kCheckConfig);
  EXPECT_EQ(c.check_config_path, "a.toml");

  CommandLine missing = parse({"check-config"});
  EXPECT_EQ(missing.action, CommandLine::Action::kExit);
  EXPECT_NE(missing.exit_code, 0);
}

TEST(CommandLineTest, UnknownOption) {
  CommandLine c = parse({"--frobnicate"});
  EXPECT_EQ(c.action, CommandLine::Action::kExit);
  EXPECT_EQ(c.exit_code, 2);
  EXPECT_TRUE(c.output_is_error);
}

TEST(CommandLineTest, DomainAndStoreOverrides) {
  CommandLine c = parse({"--domain", "Example.COM", "--domain", "example.org", "--store", "x.db"});
  ASSERT_EQ(c.action, CommandLine::Action::kRun);
  EXPECT_EQ(c.domains, (std::vector<std::string>{"example.com", "example.org"}));
  ASSERT_TRUE(c.store_path.has_value());
  Config config = defaultConfig();
  applyOverrides(c, config);
  EXPECT_EQ(config.domains, c.domains);
  EXPECT_EQ(config.store.path, "x.db");
  // Without overrides the configuration is kept.
  Config untouched = defaultConfig();
  applyOverrides(parse({}), untouched);
  EXPECT_EQ(untouched.domains, defaultConfig().domains);
  EXPECT_EQ(untouched.store.path, "sipwake.db");
}

TEST(CommandLineTest, UserCommands) {
  CommandLine add = parse({"user", "add", "alice@Example.com", "--store", "u.db"});
  ASSERT_EQ(add.action, CommandLine::Action::kUser);
  EXPECT_EQ(add.user_command, CommandLine::UserCommand::kAdd);
  EXPECT_EQ(add.user, "alice");
  EXPECT_EQ(add.user_domain, "example.com");
  EXPECT_EQ(add.store_path, std::optional<std::string>("u.db"));

  CommandLine del = parse({"--config", "c.toml", "user", "del", "a@b@example.com"});
  ASSERT_EQ(del.action, CommandLine::Action::kUser);
  EXPECT_EQ(del.user_command, CommandLine::UserCommand::kDel);
  EXPECT_EQ(del.user, "a@b");
  EXPECT_EQ(del.config_path, std::optional<std::string>("c.toml"));

  CommandLine passwd = parse({"user", "passwd", "bob@example.com"});
  EXPECT_EQ(passwd.user_command, CommandLine::UserCommand::kPasswd);

  CommandLine list = parse({"user", "list"});
  ASSERT_EQ(list.action, CommandLine::Action::kUser);
  EXPECT_EQ(list.user_command, CommandLine::UserCommand::kList);
  EXPECT_EQ(list.user_domain, "");
  EXPECT_EQ(parse({"user", "list", "Example.org"}).user_domain, "example.org");

  for (auto bad : {"alice", "@example.com", "alice@"}) {
    CommandLine c = parse({"user", "add", bad});
    EXPECT_EQ(c.action, CommandLine::Action::kExit) << bad;
    EXPECT_EQ(c.exit_code, 2) << bad;
    EXPECT_NE(c.output.find("USER@DOMAIN"), std::string::npos) << bad;
  }
  EXPECT_EQ(parse({"user"}).exit_code, 2);
  EXPECT_EQ(parse({"user", "add"}).exit_code, 2);

  CommandLine import = parse({"user", "import", "users.txt", "--store", "u.db"});
  ASSERT_EQ(import.action, CommandLine::Action::kUser);
  EXPECT_EQ(import.user_command, CommandLine::UserCommand::kImport);
  EXPECT_EQ(import.import_path, "users.txt");
  EXPECT_FALSE(import.import_replace);
  EXPECT_EQ(import.store_path, std::optional<std::string>("u.db"));
  CommandLine replace = parse({"user", "import", "--replace", "-"});
  EXPECT_EQ(replace.user_command, CommandLine::UserCommand::kImport);
  EXPECT_EQ(replace.import_path, "-");
  EXPECT_TRUE(replace.import_replace);
  EXPECT_EQ(parse({"user", "import"}).exit_code, 2);
}

TEST(UserImportTest, ParsesLinesCommentsAndBlanks) {
  auto lines = parseUserImport(
      "# users for the load test\n"
      "alice@Example.COM  s3cret\n"
      "\n"
      "   \t \r\n"
      "  # indented comment\n"
      "\tb@b@example.org\tpw#not-a-comment \r\n"
      "carol@example.com x",  // no newline at the end
      "users.txt");
  ASSERT_TRUE(lines.isOk()) << lines.status().toString();
  ASSERT_EQ(lines->size(), 3u);
  EXPECT_EQ((*lines)[0].line, 2u);
  EXPECT_EQ((*lines)[0].user, "alice");
  EXPECT_EQ((*lines)[0].domain, "example.com");
  EXPECT_EQ((*lines)[0].password, "s3cret");
  EXPECT_EQ((*lines)[1].line, 6u);
  EXPECT_EQ((*lines)[1].user, "b@b");
  EXPECT_EQ((*lines)[1].domain, "example.org");
  EXPECT_EQ((*lines)[1].password, "pw#not-a-comment");
  EXPECT_EQ((*lines)[2].line, 7u);
  EXPECT_EQ((*lines)[2].password, "x");
  EXPECT_TRUE(parseUserImport("", "empty").isOk());
  EXPECT_TRUE(parseUserImport("", "empty")->empty());
}

TEST(UserImportTest, FirstBadLineIsNamed) {
  struct Case {
    const char* text;
    const char* message;
  } const cases[] = {
      {"a@x p\nb@x\n", "f.txt:2: expected \"USER@DOMAIN PASSWORD\", got 1 field"},
      {"a@x p\n\n# c\nb@x p q\n", "f.txt:4: expected \"USER@DOMAIN PASSWORD\", got 3 fields"},
      {"bob pw\n", "f.txt:1: expected USER@DOMAIN, got \"bob\""},
      {"a@x p\r\n@x pw\n", "f.txt:2: expected USER@DOMAIN, got \"@x\""},
      {"a@ pw\n", "f.txt:1: expected USER@DOMAIN, got \"a@\""},
  };
  for (const Case& c : cases) {
    auto r = parseUserImport(c.text, "f.txt");
    ASSERT_FALSE(r.isOk()) << c.text;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(r.status().message(), c.message);
  }
  // The password of a bad line is never echoed.
  auto r = parseUserImport("a@x secret-one extra\n", "f.txt");
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().message().find("secret-one"), std::string::npos);
}


TEST(AdminCommandLineTest, StatusWithAdminOptions) {
  CommandLine cl = parse({"status", "--admin", "http://127.0.0.1:9090", "--token-file", "t", "--json"});
  ASSERT_EQ(cl.action, CommandLine::Action::kAdmin) << cl.output;
  EXPECT_EQ(cl.admin_command, CommandLine::AdminCommand::kStatus);
  EXPECT_EQ(cl.admin_url, "http://127.0.0.1:9090");
  EXPECT_EQ(cl.admin_token_file, "t");
  EXPECT_TRUE(cl.admin_json);
}

TEST(AdminCommandLineTest, ConfigBeforeTheCommandIsKept) {
  CommandLine cl = parse({"--config", "/etc/sipwake/x.toml", "binding", "list", "sip:Alice@Example.COM"});
  ASSERT_EQ(cl.action, CommandLine::Action::kAdmin) << cl.output;
  EXPECT_EQ(cl.admin_command, CommandLine::AdminCommand::kBindingList);
  ASSERT_TRUE(cl.config_path.has_value());
  EXPECT_EQ(*cl.config_path, "/etc/sipwake/x.toml");
  EXPECT_EQ(cl.admin_aor, "Alice@example.com");  // "sip:" dropped, domain lower-cased
}

TEST(AdminCommandLineTest, TimelineByAorOrCallId) {
  CommandLine cl = parse({"timeline", "alice@example.com", "-n", "3"});
  ASSERT_EQ(cl.action, CommandLine::Action::kAdmin) << cl.output;
  EXPECT_EQ(cl.admin_command, CommandLine::AdminCommand::kTimeline);
  EXPECT_EQ(cl.admin_aor, "alice@example.com");
  EXPECT_EQ(cl.admin_limit, 3u);
  cl = parse({"timeline", "--call-id", "a84b4c76e66710@pc33"});
  ASSERT_EQ(cl.action, CommandLine::Action::kAdmin) << cl.output;
  EXPECT_EQ(cl.admin_call_id, "a84b4c76e66710@pc33");
  EXPECT_TRUE(cl.admin_aor.empty());
  cl = parse({"timeline"});
  EXPECT_EQ(cl.action, CommandLine::Action::kExit);
  EXPECT_EQ(cl.exit_code, 2);
  EXPECT_NE(cl.output.find("USER@DOMAIN or --call-id"), std::string::npos) << cl.output;
  cl = parse({"timeline", "--limit", "500", "alice@example.com"});
  EXPECT_EQ(cl.action, CommandLine::Action::kExit);
  EXPECT_EQ(cl.exit_code, 2);
}

TEST(AdminCommandLineTest, PushTestAndReload) {
  CommandLine cl = parse({"push", "test", "alice@example.com", "--voip"});
  ASSERT_EQ(cl.action, CommandLine::Action::kAdmin) << cl.output;
  EXPECT_EQ(cl.admin_command, CommandLine::AdminCommand::kPushTest);
  EXPECT_TRUE(cl.admin_voip);
  cl = parse({"push", "test"});
  EXPECT_EQ(cl.action, CommandLine::Action::kExit);
  EXPECT_EQ(cl.exit_code, 2);
  cl = parse({"reload"});
  ASSERT_EQ(cl.action, CommandLine::Action::kAdmin) << cl.output;
  EXPECT_EQ(cl.admin_command, CommandLine::AdminCommand::kReload);
}

TEST(AdminCommandLineTest, BindingDropNeedsExactlyOneSelector) {
  CommandLine cl = parse({"binding", "drop", "alice@example.com", "--device", "k1"});
  ASSERT_EQ(cl.action, CommandLine::Action::kAdmin) << cl.output;
  EXPECT_EQ(cl.admin_command, CommandLine::AdminCommand::kBindingDrop);
  EXPECT_EQ(cl.admin_device, "k1");
  cl = parse({"binding", "drop", "alice@example.com"});
  EXPECT_EQ(cl.action, CommandLine::Action::kExit);
  EXPECT_NE(cl.output.find("--device KEY, --contact URI or --all"), std::string::npos) << cl.output;
  cl = parse({"binding", "drop", "alice@example.com", "--device", "k1", "--all"});
  EXPECT_EQ(cl.action, CommandLine::Action::kExit);
  EXPECT_EQ(cl.exit_code, 2);
  cl = parse({"binding", "drop", "nodomain", "--all"});
  EXPECT_EQ(cl.action, CommandLine::Action::kExit);
  EXPECT_NE(cl.output.find("expected USER@DOMAIN"), std::string::npos) << cl.output;
}

}  // namespace
}  // namespace sipwake::server
