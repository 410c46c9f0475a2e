; Inno Setup script for the Windows installer. build.py runs it when `iscc` is on the PATH:
;   iscc /DAppVersion=0.1.0 /DSourceDir=dist\d2i-desktop /DIconFile=build\d2i-desktop.ico /Odist installer\windows\d2i-desktop.iss
; Per-user install (no administrator rights); uninstalling keeps models, library, settings and pictures,
; which live in the user's app-data and Pictures folders, not in the app folder.
#ifndef AppVersion
  #define AppVersion "0.0.0"
#endif
#ifndef IconFile
  #define IconFile "..\..\build\d2i-desktop.ico"
#endif
#ifndef SourceDir
  #define SourceDir "..\..\dist\d2i-desktop"
#endif

[Setup]
AppId={{292752C6-8828-41EA-8BF0-D90C724283E2}
AppName=d2i-desktop
AppVersion={#AppVersion}
AppPublisher=d2i-desktop
DefaultDirName={localappdata}\Programs\d2i-desktop
DefaultGroupName=d2i-desktop
PrivilegesRequired=lowest
OutputBaseFilename=d2i-desktop-{#AppVersion}-windows-x86_64-setup
SetupIconFile={#IconFile}
UninstallDisplayIcon={app}\d2i-desktop.exe
Compression=lzma2/ultra64
SolidCompression=yes
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
WizardStyle=modern

[Files]
Source: "{#SourceDir}\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{group}\d2i-desktop"; Filename: "{app}\d2i-desktop.exe"
Name: "{userdesktop}\d2i-desktop"; Filename: "{app}\d2i-desktop.exe"; Tasks: desktopicon

[Tasks]
Name: "desktopicon"; Description: "Create a desktop shortcut"; Flags: unchecked

[Run]
Filename: "{app}\d2i-desktop.exe"; Description: "Start d2i-desktop"; Flags: nowait postinstall skipifsilent
